from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from lassm import ablations, config, viz
from lassm.ablations import Times, check_variant
from lassm.ablations import runner as ablation_runner
from lassm.data import prepare as prepare_module

# ------------------------------------------------------------------------------- variants


def _get(cfg, key):
    for part in key.split("."):
        cfg = getattr(cfg, part)
    return cfg


@pytest.mark.parametrize("preset", ["synthetic", "mosd"])
def test_builtin_variants_apply_and_change_their_field(preset):
    for name, overrides in ablations.VARIANTS.items():
        resolved = check_variant(name, overrides, preset)
        extra = set(ablations.ZERO_T_LAYER_AUGMENT) if name == "t_layer-0" else set()
        assert set(resolved) == set(overrides) | extra
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


@pytest.mark.parametrize("preset", ["synthetic", "mosd", "scannet", "scannet200", "scannetpp"])
def test_t_layer_0_variant_trains_with_the_minus_0_augmentation(preset):
    zero = config.augment_preset(config.preset(preset).data.name, "-0")
    resolved = check_variant("t0", {"model.decoder.t_layer": 0}, preset)
    assert resolved == {"model.decoder.t_layer": 0, "augment.elastic_p": zero.elastic_p,
                        "augment.val_rotate_z": zero.val_rotate_z}
    # the variant's own augmentation fields win; other t_layer values keep the preset's augmentation
    own = check_variant("t0", {"model.decoder.t_layer": 0, "augment.elastic_p": 0.7}, preset)
    assert own["augment.elastic_p"] == 0.7 and own["augment.val_rotate_z"] == zero.val_rotate_z
    assert check_variant("t6", {"model.decoder.t_layer": 6}, preset) == {"model.decoder.t_layer": 6}


def test_variants_may_set_augmentation_fields():
    assert check_variant("a", {"augment.val_rotate_z": None, "augment.grid_size": 0.05}) == {
        "augment.val_rotate_z": None, "augment.grid_size": 0.05}
    with pytest.raises(ValueError, match=r"variant 'a'.*augment.elastic_p.*probability"):
        check_variant("a", {"augment.elastic_p": 2.0})
    with pytest.raises(ValueError, match=r"variant 'a'.*augment.grid_size expects a value \(not None\)"):
        check_variant("a", {"augment.grid_size": None})


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
    assert "base" in viz.format_table(table) and "±" in viz.format_table(table)


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


def _fake_launch(calls: list, fail: set):
    """Stands in for lassm.train.launch: writes a tiny metrics.jsonl, or raises like a failing run."""

    def launch(cfg, gpus, log=print):
        calls.append(cfg)
        run_dir = Path(cfg.train.output_root) / cfg.train.experiment
        assert run_dir.is_dir() and gpus == 1
        print("training", cfg.train.experiment)  # the run's console output goes to its train.log
        if cfg.train.experiment in fail:
            raise ValueError("decoder broke")
        ap50 = 0.1 * (1 + cfg.seed)
        (run_dir / "metrics.jsonl").write_text(json.dumps(
            {"kind": "val", "step": 5, "AP": ap50 / 2, "AP50": ap50, "AP25": ap50, "epoch": 1,
             "seconds_per_scene": 0.01}) + "\n")
        return {"AP50": ap50}

    return launch


def _rooms(tmp_path: Path) -> Path:
    """A non-empty stand-in for a processed synthetic data folder (the fake launch never reads it)."""
    (tmp_path / "rooms" / "train").mkdir(parents=True, exist_ok=True)
    return tmp_path / "rooms"


def test_run_study_skips_finished_and_records_failures(tmp_path):
    calls, logs = [], []
    kwargs = dict(preset="synthetic", data_root=str(_rooms(tmp_path)), epochs=3, seeds=[0, 1],
                  out_root=tmp_path / "studies", lr=0.01, log=logs.append)
    study_dir = tmp_path / "studies" / "s"
    fail = {"k-16-s1"}
    results = ablations.run_study("s", ["reference", "k-16"], launch=_fake_launch(calls, fail), **kwargs)
    assert [r["status"] for r in results] == ["done", "done", "done", "failed"]
    assert [c.train.experiment for c in calls] == ["reference-s0", "reference-s1", "k-16-s0", "k-16-s1"]
    assert [c.seed for c in calls] == [0, 1, 0, 1]
    assert calls[2].model.decoder.k == 16 and calls[0].model.decoder.k == config.synthetic().model.decoder.k
    assert calls[0].train.lr == 0.01 and calls[0].train.epochs == 3
    assert {c.train.output_root for c in calls} == {str(study_dir)}
    failed = json.loads((study_dir / "k-16-s1" / "failed.json").read_text())
    assert failed["error"] == "ValueError: decoder broke" and failed["wall_seconds"] >= 0
    assert "decoder broke" in failed["traceback"]
    assert "FAILED" in logs[-1] and "decoder broke" in logs[-1]
    assert (study_dir / "reference-s0" / "train.log").read_text() == "training reference-s0\n"
    done = json.loads((study_dir / "k-16-s0" / "done.json").read_text())
    assert done["overrides"] == {"model.decoder.k": 16} and done["wall_seconds"] >= 0
    assert not list(study_dir.rglob("*.ipynb"))  # no notebook is executed per run

    rows = ablations.collect(study_dir)
    assert [(r["variant"], r["seed"], r["status"]) for r in rows] == [
        ("reference", 0, "done"), ("reference", 1, "done"), ("k-16", 0, "done"), ("k-16", 1, "failed")]
    assert rows[1]["AP50"] == pytest.approx(0.2)

    calls.clear()  # a rerun skips the three finished runs and retries the failed one, which now works
    results = ablations.run_study("s", ["reference", "k-16"], launch=_fake_launch(calls, set()), **kwargs)
    assert [r["status"] for r in results] == ["skipped", "skipped", "skipped", "done"]
    assert [c.train.experiment for c in calls] == ["k-16-s1"]
    assert not (study_dir / "k-16-s1" / "failed.json").exists()
    assert (study_dir / "k-16-s1" / "done.json").is_file()


def _notebook_03_config(root: Path, preset: str, data_root: str, experiment: str, output_root: str,
                        epochs: int, batch_size: int, lr: float, eval_every: int, seed: int, smoke: bool,
                        overrides: dict) -> config.Config:
    """What 03_train.ipynb's second cell resolves for these parameters (variant "-3", amp "auto",
    resume True), written out here independently of the runner."""
    cfg = config.preset(preset, variant="-3")
    cfg.seed = seed
    cfg.data.root = str(root / (data_root or cfg.data.root))
    cfg.train.experiment = experiment
    settings = {"train.epochs": epochs, "train.batch_size": batch_size, "train.lr": lr, "train.amp": "auto",
                "train.resume": True, "train.eval_interval": ((1, eval_every),)}
    if smoke:
        cfg.data.root = str(root / "outputs/smoke/synthetic_train")
        config.tiny(cfg)
        settings.update({"train.epochs": 1, "train.max_steps": 2, "train.batch_size": 1,
                         "train.num_workers": 0, "train.val_max_scenes": 1, "train.resume": False})
    cfg.train.output_root = str(root / output_root)
    settings.update(overrides)
    return config.apply_overrides(cfg, settings)


@pytest.mark.parametrize("smoke", [False, True])
def test_run_study_config_is_what_03_train_resolved(tmp_path, monkeypatch, smoke):
    prepared = []  # smoke runs use outputs/smoke/synthetic_train: never generate rooms from a test
    monkeypatch.setattr(prepare_module, "prepare", lambda *args, **kwargs: prepared.append(kwargs))
    calls = []
    rooms = str(_rooms(tmp_path))
    ablations.run_study("s", ["t_layer-0", "queries-x2"], preset="synthetic", data_root=rooms, epochs=7,
                        seeds=[3], out_root=tmp_path, smoke=smoke, batch_size=4, lr=0.002, eval_every=5,
                        launch=_fake_launch(calls, set()), log=lambda line: None)
    root = config.project_root()
    zero = config.augment_preset("synthetic", "-0")
    expected = [
        _notebook_03_config(root, "synthetic", rooms, "t_layer-0-s3", str(tmp_path / "s"), 7, 4, 0.002, 5, 3,
                            smoke, {"model.decoder.t_layer": 0, "augment.elastic_p": zero.elastic_p,
                                    "augment.val_rotate_z": zero.val_rotate_z}),
        # relative values resolve against the preset (100 queries), as the notebook received them
        _notebook_03_config(root, "synthetic", rooms, "queries-x2-s3", str(tmp_path / "s"), 7, 4, 0.002, 5, 3,
                            smoke, {"model.decoder.num_query": 200}),
    ]
    assert [c.to_dict() for c in calls] == [e.to_dict() for e in expected]
    assert calls[0].augment.elastic_p == 0.5 and calls[0].augment.val_rotate_z is None
    assert calls[1].model.decoder.num_query == 200
    assert calls[0].model.decoder.d_model == (64 if smoke else 128)
    assert len(prepared) <= 2 and all(p["num_rooms"] == 3 for p in prepared)


def test_run_study_generates_synthetic_rooms_for_an_empty_folder(tmp_path, monkeypatch):
    prepared = []

    def fake_prepare(dataset, raw_root, out_root, **kwargs):
        prepared.append((dataset, raw_root, out_root, kwargs))
        (Path(out_root) / "train").mkdir(parents=True)

    monkeypatch.setattr(prepare_module, "prepare", fake_prepare)
    (tmp_path / "empty").mkdir()
    ablations.run_study("s", ["reference", "k-4"], data_root=str(tmp_path / "empty"), seeds=[5],
                        out_root=tmp_path, launch=_fake_launch([], set()), log=lambda line: None)
    root = str(tmp_path / "empty")
    assert prepared == [("synthetic", root + "_raw", root,
                         {"room_size": "small", "seed": 5, "num_rooms": ablation_runner.SYNTHETIC_ROOMS})]


def test_run_study_rejects_bad_input_before_running(tmp_path):
    calls = []
    launch = _fake_launch(calls, set())
    with pytest.raises(ValueError, match="data_root: .*missing_root does not exist"):
        ablations.run_study("s", ["reference"], data_root=str(tmp_path / "missing_root"), out_root=tmp_path,
                            launch=launch)
    with pytest.raises(ValueError, match="data_root: .*no 'train' split"):
        ablations.run_study("s", ["reference"], preset="mosd", data_root=str(tmp_path), out_root=tmp_path,
                            launch=launch)
    rooms = str(_rooms(tmp_path))
    with pytest.raises(ValueError, match="unknown names"):
        ablations.run_study("s", ["no-such-variant"], data_root=rooms, out_root=tmp_path, launch=launch)
    with pytest.raises(ValueError, match="variant 'mine'.*mixer"):
        ablations.run_study("s", {"mine": {"model.decoder.mixer": "rnn"}}, data_root=rooms, out_root=tmp_path,
                            launch=launch)
    with pytest.raises(ValueError, match=r"variant 'mine': \['train.experiment'\] are set by run_study"):
        ablations.run_study("s", {"mine": {"train.experiment": "x"}}, data_root=rooms, out_root=tmp_path,
                            launch=launch)
    with pytest.raises(ValueError, match="seeds"):
        ablations.run_study("s", ["reference"], seeds=[], data_root=rooms, out_root=tmp_path, launch=launch)
    with pytest.raises(ValueError, match="batch_size"):
        ablations.run_study("s", ["reference"], batch_size=0, data_root=rooms, out_root=tmp_path,
                            launch=launch)
    with pytest.raises(ValueError, match=r"settings: \['seed'\]"):
        ablations.run_study("s", ["reference"], settings={"seed": 3}, data_root=rooms, out_root=tmp_path,
                            launch=launch)
    with pytest.raises(ValueError, match="train.amp"):
        ablations.run_study("s", ["reference"], settings={"train.amp": "fp8"}, data_root=rooms,
                            out_root=tmp_path, launch=launch)
    assert calls == [] and not (tmp_path / "s").exists()


# ------------------------------------------------------------------------------- figures and report


def test_validation_curves(tmp_path):
    curves = ablations.validation_curves(_fake_study(tmp_path))
    assert [(c["variant"], c["seed"]) for c in curves] == [("base", 0), ("base", 1), ("k-16", 0)]
    assert curves[0]["step"] == [10, 20] and curves[0]["AP50"] == [0.5, 0.4] and curves[1]["AP"] == [0.1, 0.4]


def test_study_report_end_to_end(tmp_path):
    study = _fake_study(tmp_path)
    table = ablations.summary_table(ablations.collect(study))
    figures = [viz.ap_figure(table), viz.curves_figure(ablations.validation_curves(study)),
               viz.tradeoff_figure(table)]
    path = viz.report_html(figures, table, tmp_path / "report.html", "a <test>")
    text = path.read_text()
    assert text.count("plotly.js v") == 1 and text.count("Plotly.newPlot") == 3
    assert "a &lt;test&gt;" in text and "RuntimeError: boom" in text


def test_reference_study_results_still_read():
    path = config.project_root() / "outputs/ablations/reference_study/results.csv"
    if not path.is_file():
        pytest.skip(f"{path} is not in this checkout")
    rows = ablations.read_csv(path)
    table = ablations.summary_table(rows)
    assert [r["variant"] for r in table] == list(dict.fromkeys(r["variant"] for r in rows))
    assert all(r["done"] + r["failed"] <= r["runs"] for r in table)
    done = [r for r in rows if r["status"] == "done"]
    assert done and all(isinstance(r["AP50"], float) for r in done)
    assert "reference" in viz.format_table(table)
