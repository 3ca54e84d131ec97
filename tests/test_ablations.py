from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from lassm import ablations, config
from lassm.ablations import Times, check_variant

# ------------------------------------------------------------------------------- variants


def _get(cfg, key):
    for part in key.split("."):
        cfg = getattr(cfg, part)
    return cfg


@pytest.mark.parametrize("preset", ["synthetic", "mosd"])
def test_builtin_variants_apply_and_change_their_field(preset):
    for name, overrides in ablations.VARIANTS.items():
        resolved = check_variant(name, overrides, preset)
        assert set(resolved) == set(overrides)
        base, cfg = config.preset(preset), config.preset(preset)
        config.apply_overrides(cfg, resolved)
        for key, value in resolved.items():
            new = _get(cfg, key)
            assert new != _get(base, key), (name, key)
            assert (list(new) if isinstance(new, tuple) else new) == value
    assert check_variant("reference", {}, preset) == {}
    # the queries axis is relative to the preset's 100 queries
    half = {"model.decoder.num_query": Times(0.5)}
    assert check_variant("q", half, preset) == {"model.decoder.num_query": 50}
    assert ablations.VARIANTS["queries-x2"]["model.decoder.num_query"].resolve(400) == 800
    assert set(ablations.STUDIES["reference_study"]) == set(ablations.VARIANTS)
    assert set(ablations.STUDIES["smoke"]) <= set(ablations.VARIANTS)


def test_bad_variants_name_the_variant_key_and_expectation():
    with pytest.raises(ValueError, match=r"variant 'v'.*'model.decoder.kk'"):
        check_variant("v", {"model.decoder.kk": 3})
    with pytest.raises(ValueError, match=r"variant 'v'.*unknown config field 'modle.decoder.k'"):
        check_variant("v", {"modle.decoder.k": 3})
    with pytest.raises(ValueError, match=r"variant 'v'.*mixer.*'ssm', 'attention', 'none'"):
        check_variant("v", {"model.decoder.mixer": "mamba"})
    with pytest.raises(ValueError, match=r"variant 'v'.*model.decoder.k expects an integer"):
        check_variant("v", {"model.decoder.k": "16"})
    with pytest.raises(ValueError, match=r"variant 'v'.*centre_refine expects True or False"):
        check_variant("v", {"model.decoder.centre_refine": 0})
    with pytest.raises(ValueError, match=r"variant 'v'.*order"):
        check_variant("v", {"model.decoder.order": ("spiral",)})
    with pytest.raises(ValueError, match=r"variant 'v'.*t_layer"):
        check_variant("v", {"model.decoder.t_layer": 7})
    with pytest.raises(ValueError, match="variant name"):
        check_variant("a/b", {})
    with pytest.raises(ValueError, match=r"variants: unknown names \['k-5'\]"):
        ablations.study_variants("reference_study", ["k-4", "k-5"])
    with pytest.raises(ValueError, match="study: 'mine' has no built-in"):
        ablations.study_variants("mine", [])


# ------------------------------------------------------------------------------- collecting


def _write_run(run_dir: Path, vals: list[tuple[float, float, float]], marker: str | None, error: str = "",
               epoch_seconds=(2.0, 3.0), peaks=(100.0, 150.0), params=1234, wall=9.5):
    run_dir.mkdir(parents=True)
    lines = [{"kind": "run", "step": 0, "params": params, "processes": 1}]
    for i, (sec, peak) in enumerate(zip(epoch_seconds, peaks, strict=True)):
        lines.append({"kind": "epoch", "step": 10 * (i + 1), "loss": 1.0, "epoch": i + 1, "seconds": sec,
                      "peak_mb": peak})
    for i, (ap, ap50, ap25) in enumerate(vals):
        lines.append({"kind": "val", "step": 10 * (i + 1), "AP": ap, "AP50": ap50, "AP25": ap25,
                      "epoch": i + 1, "seconds_per_scene": 0.1 * (i + 1)})
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    variant, seed = run_dir.name.rsplit("-s", 1)
    body = {"variant": variant, "seed": int(seed), "wall_seconds": wall}
    if marker == "failed":
        body["error"] = error
    if marker:
        (run_dir / f"{marker}.json").write_text(json.dumps(body))


def _fake_study(tmp_path: Path) -> Path:
    study = tmp_path / "study"
    _write_run(study / "base-s0", [(0.2, 0.5, 0.6), (0.3, 0.4, 0.7)], "done")  # best by AP50: the first
    _write_run(study / "base-s1", [(0.1, 0.3, 0.5), (0.4, 0.6, 0.8)], "done", epoch_seconds=(4.0, 4.0))
    _write_run(study / "k-4-s0", [], "failed", error="RuntimeError: boom", epoch_seconds=(1.0,), peaks=(7.0,))
    _write_run(study / "k-16-s0", [(0.5, 0.7, 0.9)], None)  # still running (or killed)
    (study / "notes").mkdir()  # not a run folder
    (study / "study.json").write_text(json.dumps({"variants": {"base": {}, "k-4": {}}}))
    return study


def test_collect_rows_from_a_study_folder(tmp_path):
    rows = ablations.collect(_fake_study(tmp_path))
    assert [(r["variant"], r["seed"], r["status"]) for r in rows] == [
        ("base", 0, "done"), ("base", 1, "done"), ("k-4", 0, "failed"), ("k-16", 0, "incomplete")]
    b0, b1, k4, k16 = rows
    assert (b0["AP"], b0["AP50"], b0["AP25"], b0["best_epoch"]) == (0.2, 0.5, 0.6, 1)
    assert (b0["last_AP"], b0["last_AP50"], b0["last_AP25"]) == (0.3, 0.4, 0.7)
    assert (b1["AP"], b1["AP50"], b1["best_epoch"]) == (0.4, 0.6, 2)
    assert b0["train_seconds"] == 5.0 and b1["train_seconds"] == 8.0
    assert b0["infer_seconds"] == pytest.approx(0.2) and b0["peak_mb"] == 150.0 and b0["params"] == 1234
    assert b0["wall_seconds"] == 9.5 and b0["error"] == ""
    assert k4["AP"] is None and k4["error"] == "RuntimeError: boom" and k4["train_seconds"] == 1.0
    assert k16["AP50"] == 0.7 and k16["wall_seconds"] is None
    with pytest.raises(ValueError, match="study_dir"):
        ablations.collect(tmp_path / "nope")


def test_summary_mean_and_sample_std(tmp_path):
    table = ablations.summary_table(ablations.collect(_fake_study(tmp_path)))
    base, k4, k16 = table
    assert (base["variant"], base["runs"], base["done"], base["failed"]) == ("base", 2, 2, 0)
    values = [0.2, 0.4]
    mean = sum(values) / 2
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    assert base["AP_mean"] == pytest.approx(mean) and base["AP_std"] == pytest.approx(std)
    assert base["train_seconds_mean"] == pytest.approx(6.5)
    assert (k4["done"], k4["failed"], k4["AP_mean"], k4["error"]) == (0, 1, None, "RuntimeError: boom")
    assert k16["done"] == 0 and k16["AP50_mean"] is None
    single = ablations.summary_table([{**ablations.collect(tmp_path / "study")[0]}])
    assert single[0]["AP_std"] == 0.0
    assert "base" in ablations.format_table(table) and "±" in ablations.format_table(table)


def test_csv_round_trip(tmp_path):
    rows = ablations.collect(_fake_study(tmp_path))
    path = ablations.write_csv(rows, tmp_path / "out" / "results.csv")
    back = ablations.read_csv(path)
    assert len(back) == len(rows)
    for a, b in zip(rows, back, strict=True):
        for key, value in a.items():
            expected = None if value == "" else value
            assert b[key] == (pytest.approx(expected) if isinstance(expected, float) else expected), key
    assert not list((tmp_path / "out").glob(".*tmp"))  # no leftover temporary file


# ------------------------------------------------------------------------------- running


def _fake_executor(calls: list, fail: set):
    """Stands in for papermill: writes a tiny metrics.jsonl, or raises like a failing notebook."""
    from papermill.exceptions import PapermillExecutionError

    def execute(input_path, output_path, parameters, **kwargs):
        calls.append(parameters)
        run_dir = Path(parameters["output_root"]) / parameters["experiment"]
        assert Path(output_path) == run_dir / "03_train.ipynb" and Path(input_path).name == "03_train.ipynb"
        Path(output_path).write_text("{}")
        if parameters["experiment"] in fail:
            raise PapermillExecutionError(2, 1, "train.run(cfg)", "ValueError", "decoder broke", [])
        ap50 = 0.1 * (1 + parameters["seed"])
        (run_dir / "metrics.jsonl").write_text(json.dumps(
            {"kind": "val", "step": 5, "AP": ap50 / 2, "AP50": ap50, "AP25": ap50, "epoch": 1,
             "seconds_per_scene": 0.01}) + "\n")

    return execute


def test_run_study_skips_finished_and_records_failures(tmp_path):
    calls, logs = [], []
    kwargs = dict(preset="synthetic", data_root="", epochs=3, seeds=[0, 1], out_root=tmp_path, smoke=True,
                  extra_parameters={"lr": 0.01}, log=logs.append)
    fail = {"k-16-s1"}
    results = ablations.run_study("s", ["reference", "k-16"], execute=_fake_executor(calls, fail), **kwargs)
    assert [r["status"] for r in results] == ["done", "done", "done", "failed"]
    assert len(calls) == 4 and calls[2]["overrides"] == {"model.decoder.k": 16}
    assert calls[0]["overrides"] == {} and calls[0]["experiment"] == "reference-s0"
    assert calls[0]["lr"] == 0.01 and calls[0]["epochs"] == 3 and calls[0]["smoke"] is True
    failed = json.loads((tmp_path / "s" / "k-16-s1" / "failed.json").read_text())
    assert failed["error"] == "ValueError: decoder broke" and failed["wall_seconds"] >= 0
    assert "FAILED" in logs[-1] and "decoder broke" in logs[-1]

    rows = ablations.collect(tmp_path / "s")
    assert [(r["variant"], r["seed"], r["status"]) for r in rows] == [
        ("reference", 0, "done"), ("reference", 1, "done"), ("k-16", 0, "done"), ("k-16", 1, "failed")]
    assert rows[1]["AP50"] == pytest.approx(0.2)

    calls.clear()  # a rerun skips the three finished runs and retries the failed one, which now works
    results = ablations.run_study("s", ["reference", "k-16"], execute=_fake_executor(calls, set()), **kwargs)
    assert [r["status"] for r in results] == ["skipped", "skipped", "skipped", "done"]
    assert [c["experiment"] for c in calls] == ["k-16-s1"]
    assert not (tmp_path / "s" / "k-16-s1" / "failed.json").exists()
    assert (tmp_path / "s" / "k-16-s1" / "done.json").is_file()


def test_run_study_rejects_bad_input_before_running(tmp_path):
    calls = []
    execute = _fake_executor(calls, set())
    with pytest.raises(ValueError, match="data_root: .*missing_root does not exist"):
        ablations.run_study("s", ["reference"], data_root=str(tmp_path / "missing_root"), out_root=tmp_path,
                            execute=execute)
    with pytest.raises(ValueError, match="data_root: .*no 'train' split"):
        ablations.run_study("s", ["reference"], preset="mosd", data_root=str(tmp_path), out_root=tmp_path,
                            execute=execute)
    with pytest.raises(ValueError, match="unknown names"):
        ablations.run_study("s", ["no-such-variant"], out_root=tmp_path, execute=execute)
    with pytest.raises(ValueError, match="variant 'mine'.*mixer"):
        ablations.run_study("s", {"mine": {"model.decoder.mixer": "rnn"}}, out_root=tmp_path, execute=execute)
    with pytest.raises(ValueError, match="seeds"):
        ablations.run_study("s", ["reference"], seeds=[], out_root=tmp_path, execute=execute)
    with pytest.raises(ValueError, match=r"extra_parameters: \['seed'\]"):
        ablations.run_study("s", ["reference"], extra_parameters={"seed": 3}, out_root=tmp_path,
                            execute=execute)
    assert calls == [] and not (tmp_path / "s").exists()


# ------------------------------------------------------------------------------- figures and report


def test_figures_and_standalone_report(tmp_path):
    study = _fake_study(tmp_path)
    rows = ablations.collect(study)
    table = ablations.summary_table(rows)
    ap = ablations.ap_figure(rows)
    assert [t.name for t in ap.data] == ["AP", "AP50", "AP25"] and list(ap.data[0].x) == ["base"]
    curves = ablations.curves_figure(study)
    assert [t.name for t in curves.data] == ["base s0", "base s1", "k-16 s0"]
    assert curves.data[0].line.dash == "solid" and curves.data[1].line.dash == "dash"
    tradeoff = ablations.tradeoff_figure(rows)
    assert list(tradeoff.data[0].text) == ["base"]
    assert ablations.table_figure(table).data[0].cells.values[0] == ["base", "k-4", "k-16"]
    path = ablations.report_html([ap, curves, tradeoff], table, tmp_path / "report.html", "a <test>")
    text = path.read_text()
    assert path.stat().st_size < 5 * 2**20
    assert text.count("plotly.js v") == 1  # plotly.js embedded once
    assert text.count("Plotly.newPlot") == 3 and "a &lt;test&gt;" in text and "RuntimeError: boom" in text


def test_export_report(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    pytest.importorskip("nbconvert")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# hello ablations")])
    source = tmp_path / "done.ipynb"
    nbformat.write(nb, source)
    out = ablations.export_report(source, tmp_path / "done.html")
    assert "hello ablations" in out.read_text()
    with pytest.raises(ValueError, match="executed_notebook_path"):
        ablations.export_report(tmp_path / "missing.ipynb", tmp_path / "x.html")
