"""Where a model loses the instances of a split: at the query seeds, in the masks, or in post-processing.

AP says how well a model does, not why. For each labelled scene this runs the model (as validation does)
and asks of every ground-truth instance:

- *seeded*: is it the majority instance of at least one seed superpoint of the query initialisation?
- per prediction stage (the initial head, then each decoder layer): of the stage's masks (superpoint
  probability > 0.5), the one with the best IoU with the instance: that IoU, its precision (the share of
  the mask on the instance), its recall (the share of the instance in the mask) and how many instances it
  covers (more than 20 % of their points). Masks that merge neighbours show as low precision and more
  than one instance per mask; masks that miss parts as low recall.
- *kept*: does a prediction left after post-processing (scoring, NMS, thresholds) reach IoU > 0.5?

Instances are counted in the model's label space (stuff and unlabelled points are no instance).

    python -m lassm.evaluate.diagnose outputs/tabletop/model_last.pth --root data/tabletop --split val_clutter
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from ..data.dataset import SceneDataset
from ..inference import gt_instances, load_model, prepare_input, resolve_device
from .oracle import superpoint_counts

TOUCH = 0.2  # a mask covers an instance when it holds more than this share of the instance's points


def mask_quality(sp_masks: np.ndarray, counts: np.ndarray) -> SimpleNamespace:
    """Each instance's best mask among ``sp_masks``: its IoU, precision, recall, instances covered.

    sp_masks: (K, S) bool masks over superpoints; counts: (S, G + 1) points of each instance in each
    superpoint (:func:`superpoint_counts`, column G: points of no instance). Returns (G,) arrays; with
    no mask every instance gets IoU, precision and recall 0 and covers 0 instances.
    """
    inst = counts[:, :-1].astype(np.float64)  # (S, G)
    num_inst = inst.shape[1]
    if len(sp_masks) == 0 or num_inst == 0:
        zero = np.zeros(num_inst)
        return SimpleNamespace(iou=zero, precision=zero, recall=zero, covers=zero.astype(np.int64))
    masks = sp_masks.astype(np.float64)  # (K, S)
    inter = masks @ inst  # (K, G) points of instance g in mask k
    mask_size = masks @ counts.sum(1)  # (K,)
    inst_size = inst.sum(0)  # (G,)
    iou = inter / np.maximum(mask_size[:, None] + inst_size[None] - inter, 1)
    best = iou.argmax(0)  # (G,) the best mask of each instance
    g = np.arange(num_inst)
    covered = inter[best] / np.maximum(inst_size[None], 1)  # (G, G) share of instance j in g's best mask
    return SimpleNamespace(iou=iou[best, g], precision=inter[best, g] / np.maximum(mask_size[best], 1),
                           recall=inter[best, g] / np.maximum(inst_size, 1),
                           covers=(covered > TOUCH).sum(1))


def seeded(seeds: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """(G,) bool: the instance is the majority of some seed superpoint (ties: the lower column)."""
    owner = counts.argmax(1)[seeds]  # (Q,) majority column of each seed, G = no instance
    return np.isin(np.arange(counts.shape[1] - 1), owner)


@torch.no_grad()
def diagnose_scene(model, cfg, arrays: dict, device) -> dict:
    """One labelled scene's per-instance answers (lists over its instances, in compact-id order)."""
    model.eval()
    batch = prepare_input(arrays, cfg, device)
    out = model(batch)
    pred = model.predict(batch, out)[0]
    scene = out.scenes[0]
    superpoint = scene.superpoint.long().cpu().numpy()  # (N,) compact 0..S-1
    instance = gt_instances(arrays, cfg)[1].numpy()  # (N,) compact 0..G-1, -1 = none
    if len(superpoint) != len(instance):
        raise ValueError(f"scene: the model saw {len(superpoint)} points, the labels hold {len(instance)}")
    num_inst = int(instance.max()) + 1 if instance.size and instance.max() >= 0 else 0
    counts = superpoint_counts(superpoint, instance, num_inst)  # (S, G + 1)
    stages = [mask_quality((st.masks[0].float().sigmoid() > 0.5).cpu().numpy(), counts)
              for st in out.decoder.stages]
    kept = mask_quality(pred.sp_masks.cpu().numpy(), counts)  # LaSSM.predict keeps superpoint masks
    return {"instances": num_inst, "points": counts[:, :-1].sum(0).tolist(),
            "seeded": seeded(out.decoder.select_idx[0].cpu().numpy(), counts).tolist(),
            "stages": [{k: v.tolist() for k, v in vars(q).items()} for q in stages],
            "kept_iou": kept.iou.tolist(), "predictions": len(pred.scores)}


def summarise(scenes: list[dict]) -> dict:
    """Pooled over every instance of the scenes: shares and means of :func:`diagnose_scene`'s answers."""
    def pool(get):
        return np.concatenate([np.asarray(get(s), np.float64) for s in scenes]) if scenes else np.zeros(0)

    def mean(a):
        return float(a.mean()) if a.size else float("nan")

    stages = []
    for i in range(len(scenes[0]["stages"]) if scenes else 0):
        iou = pool(lambda s, i=i: s["stages"][i]["iou"])
        stages.append({"iou": mean(iou), "iou_above_half": mean(iou > 0.5),
                       **{k: mean(pool(lambda s, i=i, k=k: s["stages"][i][k]))
                          for k in ("precision", "recall", "covers")}})
    return {"scenes": len(scenes), "instances": int(sum(s["instances"] for s in scenes)),
            "median_points": float(np.median(pool(lambda s: s["points"]))) if scenes else float("nan"),
            "seeded": mean(pool(lambda s: s["seeded"])), "stages": stages,
            "kept_above_half": mean(pool(lambda s: s["kept_iou"]) > 0.5),
            "predictions_per_scene": mean(np.array([s["predictions"] for s in scenes], np.float64))}


def format_summary(summary: dict) -> str:
    lines = [f"{summary['scenes']} scenes, {summary['instances']} instances "
             f"(median {summary['median_points']:.0f} points)",
             f"instances with a query seed: {100 * summary['seeded']:.1f} %",
             "each instance's best mask, per stage (0 = initial head):",
             f"{'stage':>5} {'IoU':>6} {'IoU>0.5':>8} {'precision':>9} {'recall':>7} {'instances':>9}"]
    for i, st in enumerate(summary["stages"]):
        lines.append(f"{i:>5} {st['iou']:>6.3f} {100 * st['iou_above_half']:>7.1f}% {st['precision']:>9.3f} "
                     f"{st['recall']:>7.3f} {st['covers']:>9.2f}")
    lines.append(f"after post-processing: {100 * summary['kept_above_half']:.1f} % of instances have a "
                 f"prediction with IoU > 0.5 ({summary['predictions_per_scene']:.1f} predictions per scene)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lassm.evaluate.diagnose", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="a checkpoint of this project (it stores its config)")
    parser.add_argument("--root", required=True, help="processed scenes: <root>/<split>/<scene>/")
    parser.add_argument("--split", default="val")
    parser.add_argument("--scenes", type=int, default=0, help="the first N scenes only (0 = all)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--json", type=Path, help="also write the per-scene answers and summary here")
    args = parser.parse_args(argv)
    if args.scenes < 0:
        parser.error(f"--scenes: expected 0 (all) or a positive count, got {args.scenes}")
    device = resolve_device(args.device)
    model, cfg = load_model(args.checkpoint, device=device)[:2]
    dataset = SceneDataset.for_config(cfg.data, args.root, args.split, require_labels=True)
    count = len(dataset.scenes) if args.scenes == 0 else min(args.scenes, len(dataset.scenes))
    scenes = []
    for i in range(count):
        arrays = {k: v.numpy() for k, v in dataset[i].items() if torch.is_tensor(v)}
        scenes.append({"scene": Path(dataset.scenes[i]).name, **diagnose_scene(model, cfg, arrays, device)})
    summary = summarise(scenes)
    print(f"diagnosis of {args.checkpoint} on {args.root}/{args.split}: " + format_summary(summary))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.json.with_suffix(args.json.suffix + ".tmp")
        tmp.write_text(json.dumps({"summary": summary, "scenes": scenes}, indent=1))
        tmp.replace(args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
