"""Parity with the authors' LaSSM on their golden data (issue 4; REFERENCE_SPEC 4-8).

The golden file holds the authors' model run on two labelled scenes (see its README). The file is
read from $LASSM_GOLDEN when set, else from the shared folder; the tests skip only when it is absent.
They run with the reference-behaviour flags on (lassm.config.reference_behaviour), since the golden
data were made with the reference's bugs, e.g. its unstable serialization sort.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from lassm.config import (
    BackboneConfig,
    CriterionConfig,
    DecoderConfig,
    ModelConfig,
    PostprocessConfig,
    project_root,
    reference_behaviour,
)
from lassm.model.checkpoint import load_lassm_checkpoint
from lassm.model.lassm import LaSSM

GOLDEN = Path(os.environ.get("LASSM_GOLDEN", project_root() / "../shared/golden/golden_t3.pt"))
pytestmark = pytest.mark.skipif(not GOLDEN.is_file(), reason=f"golden data {GOLDEN} not present")


def config_from_reference(conf: dict) -> ModelConfig:
    """Our ModelConfig for the reference's LaSSM config dict (only the fields the golden file uses)."""
    bb, dec, crit = conf["backbone"], conf["decoder"], conf["criterion"]
    costs = {c["type"]: c["weight"] for c in crit["matcher"]["costs"]}
    w = crit["loss_weight"]
    stuff = tuple(i for i in conf["segment_ignore_index"] if i >= 0)
    return reference_behaviour(ModelConfig(
        backbone=BackboneConfig(in_channels=bb["in_channels"], base_channels=bb["num_channels"],
                                planes=tuple(bb["num_planes"]), sparse_backend="torch"),
        decoder=DecoderConfig(d_model=dec["d_model"], num_layers=len(dec["num_blocks"]),
                              t_layer=dec["t_layer"], num_query=dec["num_query"],
                              alpha=dec["alpha"], k=dec["k"],
                              order=tuple(dec["order"]), ssm_layers=dec["num_blocks"][0],
                              attn_mask=dec["attn_mask"]),
        criterion=CriterionConfig(cost_class=costs["QueryClassificationCost"], cost_bce=costs["MaskBCECost"],
                                  cost_dice=costs["MaskDiceCost"], cost_bbox=costs["BBoxCost"],
                                  weight_class=w[0], weight_bce=w[1], weight_dice=w[2], weight_bbox=w[3],
                                  weight_sp=w[4], no_object_weight=crit["non_object_weight"],
                                  iter_matcher=crit["iter_matcher"], fix_mean_loss=crit["fix_mean_loss"]),
        postprocess=PostprocessConfig(topk_insts=conf["topk_insts"], score_thr=conf["score_thr"],
                                      npoint_thr=conf["npoint_thr"], nms=conf["nms"]),
        num_classes=dec["num_class"], stuff_classes=stuff))


@pytest.fixture(scope="module")
def golden():
    return torch.load(GOLDEN, weights_only=False)


@pytest.fixture(scope="module")
def model(golden):
    model = LaSSM(config_from_reference(golden["config"])).eval()
    report = load_lassm_checkpoint(model, {"state_dict": golden["state_dict"]})
    model.load_report = report
    return model


@pytest.fixture(scope="module")
def batch(golden):
    inputs = dict(golden["inputs"])
    inputs["feat"] = torch.cat([inputs["color"].float() / 127.5 - 1, inputs["coord"]], 1)
    return inputs


@pytest.fixture(scope="module")
def output(model, batch, golden):
    with torch.no_grad():  # the decoder fed the authors' backbone output, as the issue asks
        return model.decode(golden["backbone_feat"], batch)


def largest_error(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    """Max abs difference relative to the reference tensor's largest magnitude."""
    theirs = theirs.float()
    return float((ours.float() - theirs).abs().max() / theirs.abs().max().clamp_min(1e-12))


def test_state_dict_loads_with_no_missing_or_unexpected_keys(model):
    assert model.load_report.missing == [] and model.load_report.unexpected == []
    assert model.load_report.skipped == []


def test_backbone_reproduces_backbone_feat(model, batch, golden):
    with torch.no_grad():
        feats = model.backbone(batch["feat"], batch["grid_coord"], batch["offset"])
    assert largest_error(feats, golden["backbone_feat"]) <= 1e-4


def test_decoder_reproduces_every_stage(output, golden):
    ref = golden["decoder"]
    for b in range(2):
        assert torch.equal(output.decoder.select_idx[b], torch.as_tensor(ref["select_idx"][b]).long())
        assert largest_error(output.decoder.sp_seg[b], ref["sp_seg"][b]) <= 2e-3
        assert len(output.decoder.stages) == len(ref["stages"]) == 7
        for ours, theirs in zip(output.decoder.stages, ref["stages"], strict=True):
            assert largest_error(ours.labels[b], theirs["labels"][b]) <= 2e-3
            assert largest_error(ours.centres[b], theirs["bboxes"][b]) <= 2e-3
            assert largest_error(ours.masks[b], theirs["masks"][b]) <= 2e-3  # stored in float16


def test_losses_agree(output, golden):
    for key, value in golden["losses"].items():
        assert float(output.losses[key]) == pytest.approx(value, rel=1e-4, abs=1e-7), key


def test_prediction_agrees(model, batch, output, golden):
    ref = golden["prediction"]
    pred = model.predict(batch, output)[0]
    masks = np.unpackbits(ref["pred_masks_packed"].numpy(), axis=1, count=int(ref["num_points"])).astype(bool)
    assert pred.classes.tolist() == ref["pred_classes"].tolist()
    torch.testing.assert_close(pred.scores, ref["pred_scores"].float(), atol=1e-4, rtol=0)
    assert np.array_equal(pred.masks.numpy(), masks)
