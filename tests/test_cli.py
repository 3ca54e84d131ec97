"""Every command line: a user's mistake is one ``error:`` line and exit status 2, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from lassm import config, predict, train
from lassm.bench import cli as bench
from lassm.cli import BAD_INPUT, run_command
from lassm.data import prepare, superpoints, tabletop
from lassm.evaluate import export, formats


def assert_user_error(capsys, status, *words):
    """Exit status 2, exactly one ``error:`` line naming ``words``, no traceback."""
    err = capsys.readouterr().err
    assert status == BAD_INPUT, err
    assert [line.startswith("error: ") for line in err.splitlines()].count(True) == 1, err
    assert "Traceback" not in err
    for word in words:
        assert word in err, err


def test_run_command_maps_user_errors_and_keeps_bugs(capsys):
    assert run_command(lambda: None) == 0 and run_command(lambda: 1) == 1
    assert_user_error(capsys, run_command(lambda: int("x")), "invalid literal")
    with pytest.raises(ZeroDivisionError):
        run_command(lambda: 1 / 0)


@pytest.mark.parametrize("args, words", [
    (["--set", "train.lr=abc"], ["train.lr", "a number", "'abc'"]),
    (["--set", "train.eval_interval=5"], ["train.eval_interval", "tuple[tuple[int, int], ...]", "got 5"]),
    (["--set", "train.max_steps=-1"], ["train.max_steps"]),
    (["--set", "train.epochs=2.5"], ["train.epochs", "an integer", "2.5"]),
    (["--set", "train.epoch=3"], ["unknown field 'epoch'"]),
    (["--preset", "scannet3"], ["scannet3"]),
])
def test_train_rejects_bad_settings_before_running(args, words, capsys, monkeypatch):
    monkeypatch.setattr(train, "run", lambda cfg: pytest.fail("training started"))
    assert_user_error(capsys, train.main(args), *words)


def test_train_config_file_errors(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(train, "run", lambda cfg: pytest.fail("training started"))
    missing = tmp_path / "missing.json"
    assert_user_error(capsys, train.main(["--config", str(missing)]), str(missing), "not a file")
    junk = tmp_path / "junk.json"
    junk.write_text("{not json")
    assert_user_error(capsys, train.main(["--config", str(junk)]), str(junk), "not valid JSON")
    d = config.preset("synthetic").to_dict()
    d["train"]["epochs"] = "ten"
    bad = tmp_path / "config.json"
    bad.write_text(json.dumps(d))
    assert_user_error(capsys, train.main(["--config", str(bad)]), str(bad), "config.train.epochs", "'ten'")
    assert_user_error(capsys, train.main(["--config", str(tmp_path)]), "not a file")


def test_train_error_without_traceback_in_a_subprocess():
    proc = subprocess.run([sys.executable, "-m", "lassm.train", "--set", "train.val_max_scenes=abc"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "error: override train.val_max_scenes: expected an integer, got 'abc'"]


def test_data_commands(tmp_path, capsys):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    missing = tmp_path / "missing"
    assert_user_error(capsys, prepare.main(["mosd", str(missing), str(tmp_path / "out")]), str(missing))
    assert_user_error(capsys, tabletop.main([str(a_file), "--count", "1"]), str(a_file), "Not a directory")
    assert_user_error(capsys, tabletop.main([str(tmp_path / "tt"), "--count", "-1"]), "count")
    assert_user_error(capsys, superpoints.main([str(tmp_path / "absent.ply")]), "absent.ply")
    assert_user_error(capsys, superpoints.main([str(a_file)]), "file.txt")


def test_bench_command(tmp_path, capsys):
    assert_user_error(capsys, bench.main(["decoder", "--device", "nonsense"]), "--device", "nonsense")
    assert_user_error(capsys, bench.main(["decoder", "--device", "cpu", "--json", str(tmp_path)]),
                      "--json", "is a folder")
    assert_user_error(capsys, bench.main(["train", "--device", "cpu", "--bench-dir", str(tmp_path / "no")]),
                      "--bench-dir")


def test_evaluate_commands(tmp_path, capsys):
    assert_user_error(capsys, formats.main(["--pred", str(tmp_path / "p"), "--gt", str(tmp_path / "g")]),
                      "prediction folder not found")
    checkpoint = tmp_path / "absent.pth"
    assert_user_error(capsys, export.main([str(checkpoint), "--out", str(tmp_path / "o")]), str(checkpoint))
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    assert_user_error(capsys, export.main([str(checkpoint), "--out", str(a_file)]), "--out", "is a file")
    args = [str(checkpoint), "--out", str(tmp_path / "o"), "--max-scenes", "-1"]
    assert_user_error(capsys, export.main(args), "--max-scenes")


def test_predict_command(tmp_path, capsys, monkeypatch):
    scan = tmp_path / "scan.npy"
    np.save(scan, np.random.default_rng(0).random((50, 3)))
    checkpoint = tmp_path / "absent.pth"
    assert_user_error(capsys, predict.main([str(checkpoint), str(scan), "--out", str(tmp_path / "o")]),
                      "checkpoint file not found")
    no_scan = [str(checkpoint), str(tmp_path / "none.npy"), "--out", str(tmp_path)]
    assert_user_error(capsys, predict.main(no_scan), "none.npy")
    # the output folder is checked before the model is loaded or run
    monkeypatch.setattr(predict, "open_model", lambda *a, **k: pytest.fail("model loaded"))
    out_file = tmp_path / "taken"
    out_file.write_text("x")
    assert_user_error(capsys, predict.main([str(checkpoint), str(scan), "--out", str(out_file)]),
                      "--out", str(out_file), "is a file")
    (tmp_path / "o" / "scan_instances.npz").mkdir(parents=True)
    assert_user_error(capsys, predict.main([str(checkpoint), str(scan), "--out", str(tmp_path / "o")]),
                      "scan_instances.npz is a folder")


def test_trust_checkpoint_reaches_the_loader(tmp_path, capsys, monkeypatch):
    seen = []

    def fake_open_model(*args, trusted=False):
        seen.append(trusted)
        raise ValueError("stop here")

    monkeypatch.setattr(predict, "open_model", fake_open_model)
    monkeypatch.setattr(export, "open_model", fake_open_model)
    scan = tmp_path / "scan.npy"
    np.save(scan, np.zeros((5, 3)))
    for flags in ([], ["--trust-checkpoint"]):
        assert predict.main(["m.pth", str(scan), "--out", str(tmp_path / "p"), *flags]) == 2
        assert export.main(["m.pth", "--out", str(tmp_path / "e"), *flags]) == 2
    assert seen == [False, False, True, True]


@pytest.mark.parametrize("command", [export.main, predict.main])
def test_variant_values_starting_with_a_dash_reach_the_command(command, tmp_path, capsys):
    """argparse would read `--variant -3-sc` as two options; the commands join it and reach the checkpoint."""
    where = ["--split", "val"] if command is export.main else [str(tmp_path)]
    args = [str(tmp_path / "absent.pth"), *where, "--out", str(tmp_path / "out"),
            "--preset", "scannetpp", "--variant", "-3-sc"]
    assert command(args) == BAD_INPUT
    err = capsys.readouterr().err
    assert "expected one argument" not in err and "usage:" not in err  # past argparse, into the command
    assert err.startswith("error: ") and str(tmp_path) in err
