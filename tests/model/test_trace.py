"""trace_scene: the decoder's intermediate outputs, checked against the model's own internals."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lassm.model.decoder as decoder_module
from lassm import config
from lassm.inference import prepare_input
from lassm.model.decoder import normalised_centres
from lassm.model.lassm import LaSSM
from lassm.model.trace import CROSS_ATTENTION, INIT, LOCAL_AGGREGATION, layer_neighbours, trace_scene


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tensors this small run fastest on one thread (and thread spin-waits crawl on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_config(**decoder) -> config.Config:
    cfg = config.preset("synthetic")
    cfg.model.backbone.sparse_backend = "torch"
    cfg.model.decoder.d_model, cfg.model.decoder.ffn_hidden, cfg.model.decoder.heads = 64, 128, 4
    cfg.model.decoder.num_query = 16
    for k, v in decoder.items():
        setattr(cfg.model.decoder, k, v)
    return cfg


def blob_arrays(num_sp: int = 40, points: int = 30, seed: int = 0) -> dict:
    """num_sp superpoints, each a blob of points 30 cm apart on a grid (raw ids not compact)."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(np.arange(4), np.arange(4), np.arange(num_sp // 16 + 1)), -1).reshape(-1, 3)
    centres = grid[:num_sp] * 0.3
    coord = (centres[:, None] + rng.normal(0, 0.05, (num_sp, points, 3))).reshape(-1, 3)
    return {"coord": coord.astype(np.float32), "color": rng.integers(0, 255, (num_sp * points, 3)),
            "superpoint": np.repeat(np.arange(num_sp) * 5 + 2, points)}


def model_and_batch(**decoder):
    cfg = tiny_config(**decoder)
    torch.manual_seed(0)
    model = LaSSM(cfg.model).eval()
    return model, cfg, prepare_input(blob_arrays(), cfg, "cpu")


@pytest.fixture(scope="module")
def traced():
    model, cfg, batch = model_and_batch()
    return model, cfg, batch, trace_scene(model, batch)


def test_trace_shapes_kinds_and_probabilities(traced):
    model, cfg, batch, trace = traced
    dec = cfg.model.decoder
    n, s, q, c1 = len(batch["origin_coord"]), 40, dec.num_query, cfg.model.num_classes + 1
    t = dec.num_layers + 1
    assert trace.coord.shape == (n, 3) and trace.superpoint.shape == (n,)
    assert trace.sp_coord.shape == (s, 3) and trace.sp_confidence.shape == (s,)
    assert trace.positions.shape == (t, q, 3) and trace.class_probs.shape == (t, q, c1)
    assert trace.mask_probs.shape == (t, q, s) and trace.selected.shape == (q,)
    local = t - 1 - dec.t_layer
    assert trace.kinds == (INIT, *[CROSS_ATTENTION] * dec.t_layer, *[LOCAL_AGGREGATION] * local)
    np.testing.assert_allclose(trace.class_probs.sum(-1), 1, atol=1e-5)
    assert trace.mask_probs.min() >= 0 and trace.mask_probs.max() <= 1
    # the centroids are the means of the points' voxel coordinates: close to the points' own means
    means = np.stack([trace.coord[trace.superpoint == i].mean(0) for i in range(s)])
    np.testing.assert_allclose(trace.sp_coord, means, atol=0.02)
    assert model.training is False


def test_candidates_are_the_top_ratio_set_and_hold_the_selection(traced):
    _, cfg, _, trace = traced
    conf = trace.sp_probs[:, :-1].max(1)  # independent: largest non-background probability
    np.testing.assert_allclose(trace.sp_confidence, conf, rtol=1e-6)
    m = int(cfg.model.decoder.alpha * len(conf))  # 32 > num_query 16: the top-ratio rule applies
    assert len(trace.candidates) == m
    assert set(trace.candidates) == set(np.argsort(-conf, kind="stable")[:m])
    assert np.all(np.diff(conf[trace.candidates]) <= 0)  # most confident first
    assert set(trace.selected) <= set(trace.candidates)
    np.testing.assert_allclose(trace.seed_positions, trace.sp_coord[trace.selected], atol=1e-6)


def test_positions_match_the_normalised_centres_and_prediction_is_unchanged(traced):
    model, _, batch, trace = traced
    with torch.no_grad():
        out = model(batch)
    pred = model.predict(batch, out)[0]
    lo, hi = torch.as_tensor(trace.coord.min(0)), torch.as_tensor(trace.coord.max(0))
    for i, stage in enumerate(out.decoder.stages):
        centres = normalised_centres(torch.as_tensor(trace.positions[i]), lo, hi, reference=False)
        torch.testing.assert_close(centres, stage.centres[0], atol=1e-5, rtol=1e-5)
    assert not np.allclose(trace.positions[0], trace.positions[-1])  # the queries do move
    torch.testing.assert_close(trace.prediction.scores, pred.scores)
    assert torch.equal(trace.prediction.masks, pred.masks)


@pytest.mark.parametrize("centre_refine", [True, False])
def test_neighbours_equal_what_local_aggregation_gathers(monkeypatch, centre_refine):
    model, cfg, batch = model_and_batch(centre_refine=centre_refine)
    calls = []
    real_knn = decoder_module.knn_batched

    def recording_knn(query, points, k, *args, **kwargs):  # one scene: batch dimension 1
        idx, dist2 = real_knn(query, points, k, *args, **kwargs)
        calls.append((query[0].clone(), idx[0].clone(), points.shape[1]))
        return idx, dist2

    monkeypatch.setattr(decoder_module, "knn_batched", recording_knn)  # LocalAggregation's own kNN call
    trace = trace_scene(model, batch)
    aggregation = [i for i, kind in enumerate(trace.kinds) if kind == LOCAL_AGGREGATION]
    assert len(calls) == len(aggregation) > 0
    for stage, (query, idx, num_sp) in zip(aggregation, calls, strict=True):
        expected = np.where(idx.numpy() >= num_sp, -1, idx.numpy())
        np.testing.assert_array_equal(trace.neighbours[stage], expected)
        before = trace.positions[stage - 1] if centre_refine else trace.seed_positions
        np.testing.assert_allclose(query.numpy(), before, atol=1e-6)
    assert all(trace.neighbours[i] is None for i, kind in enumerate(trace.kinds) if kind != LOCAL_AGGREGATION)


def test_layer_neighbours_brute_force_and_empty_slots():
    rng = np.random.default_rng(1)
    sp = rng.random((5, 3)).astype(np.float32)
    pos = rng.random((4, 3)).astype(np.float32)
    got = layer_neighbours(torch.as_tensor(pos), torch.as_tensor(sp), k=8).numpy()
    d = ((pos[:, None] - sp[None]) ** 2).sum(-1)
    assert got.shape == (4, 8)
    np.testing.assert_array_equal(got[:, :5], np.argsort(d, axis=1, kind="stable"))
    assert (got[:, 5:] == -1).all()  # 5 superpoints cannot fill 8 slots


def test_trace_rejects_a_batch_of_two_scenes(traced):
    model, cfg, _, _ = traced
    from lassm.data.batch import pack_scenes

    one = prepare_input(blob_arrays(seed=1), cfg, "cpu")
    two = pack_scenes([{k: one[k] for k in ("feat", "grid_coord", "coord", "inverse", "superpoint",
                                               "origin_coord")}] * 2)
    with pytest.raises(ValueError, match="one scene"):
        trace_scene(model, two)
