"""Ablation variants: named sets of dotted config overrides (STYLE rule 12), and the built-in studies.

The axes follow the paper's ablations (REFERENCE_SPEC 6.2 query initialisation, 6.4/6.5 the layer
types split at ``t_layer``, 6.6 the serialized SSM block).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .. import config as lassm_config
from ..config.typed import TypeMismatch, convert, find_field


@dataclass(frozen=True)
class Times:
    """A value relative to the preset's own: ``Times(2)`` of ``num_query`` 100 is 200."""

    factor: float

    def resolve(self, base):
        value = base * self.factor
        return max(1, round(value)) if isinstance(base, int) else value


_D = "model.decoder."
# "reference" is LaSSM as published, with the preset's own values ("-3": 3 cross-attention layers).
# The number of queries is relative to the preset (x0.5, x1, x2): ScanNet's 400 gives 200 / 400 / 800,
# the small synthetic and mOSD presets' 100 give 50 / 100 / 200. "mixer-single" (one Hilbert path) is
# also the serialization axis's "one order". A variant with t_layer 0 also trains with the "-0"
# augmentation (check_variant adds it, per preset).
VARIANTS: dict[str, dict] = {
    "reference": {},
    "init-fps": {_D + "query_init": "fps"},  # FPS over all superpoints, no semantic filter
    "init-topk": {_D + "query_init": "semantic_topk"},  # the most confident superpoints, no FPS
    "t_layer-0": {_D + "t_layer": 0},  # local aggregation in every layer
    "t_layer-6": {_D + "t_layer": 6},  # masked cross-attention in every layer
    "mixer-single": {_D + "order": ("hilbert",)},  # single-path SSM
    "mixer-attention": {_D + "mixer": "attention"},  # self-attention among the queries
    "mixer-none": {_D + "mixer": "none"},  # no query mixer
    "order-z": {_D + "order": ("z", "z-trans")},  # z-order + transposed instead of Hilbert
    "grid-0.25": {_D + "serialization_grid": 0.25},  # a finer grid than the reference's 1 m
    "k-4": {_D + "k": 4},
    "k-16": {_D + "k": 16},
    "queries-x0.5": {_D + "num_query": Times(0.5)},
    "queries-x2": {_D + "num_query": Times(2)},
    "no-refine": {_D + "centre_refine": False},  # queries stay at their seed superpoints
    # the reference's optional mask-quality head (off in its released configs), trained as it would be
    "score-head": {_D + "use_score": True},
}

STUDIES: dict[str, list[str]] = {
    "reference_study": list(VARIANTS),
    "smoke": ["reference", "mixer-none"],  # CI: two tiny runs in smoke mode
}

NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.+-]+$")  # variant and study names become folder names
# Before augmentation was part of the config, a decoder with t_layer 0 trained with the released "-0"
# augmentation; a variant setting t_layer 0 keeps doing so, explicitly (the preset is "-3").
ZERO_T_LAYER_AUGMENT = ("augment.elastic_p", "augment.val_rotate_z")


def check_variant(name: str, overrides: dict, preset: str = "synthetic") -> dict:
    """Apply a variant's overrides to a fresh preset config; returns them resolved (no :class:`Times`).

    Keys are dotted fields of :class:`lassm.config.Config` (``model.*``, ``augment.*``, ...). A variant
    setting ``model.decoder.t_layer`` to 0 also gets ``augment.elastic_p`` and ``augment.val_rotate_z``
    of ``augment_preset(dataset, "-0")``, unless it sets them itself. ValueError names the variant, the
    key and what was expected: an unknown field, a value of the wrong type, or one the config rejects
    (e.g. ``mixer`` not in ssm / attention / none).
    """
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise ValueError(f"variant name: expected letters, digits and . _ + - only, got {name!r}")
    if not isinstance(overrides, dict):
        raise ValueError(f"variant {name!r}: expected a dict of dotted config overrides, "
                         f"got {type(overrides).__name__}")
    cfg = lassm_config.preset(preset)
    resolved = {}
    for key, value in overrides.items():
        try:
            target, field_name, declared = find_field(cfg, key)
        except KeyError as err:
            raise ValueError(f"variant {name!r}: unknown config field {key!r} (no {err.args[0]!r}); "
                             f"expected a dotted field such as 'model.decoder.k'") from None
        current = getattr(target, field_name)
        if isinstance(value, Times):
            if not isinstance(current, int | float) or isinstance(current, bool):
                raise ValueError(f"variant {name!r}: {key} is not numeric, so it cannot be relative")
            value = value.resolve(current)
        try:
            convert(value, declared)
        except TypeMismatch as err:
            raise ValueError(f"variant {name!r}: {key} expects {err.expected}, got {value!r}") from None
        try:
            lassm_config.apply_overrides(cfg, {key: value})
        except (ValueError, TypeError) as err:
            raise ValueError(f"variant {name!r}: bad value for {key}: {err}") from None
        resolved[key] = list(value) if isinstance(value, tuple) else value  # as JSON stores it
    if resolved.get("model.decoder.t_layer") == 0:
        zero = lassm_config.augment_preset(cfg.data.name, "-0")
        for key in ZERO_T_LAYER_AUGMENT:
            resolved.setdefault(key, getattr(zero, key.split(".")[1]))
    return resolved


def study_variants(study: str, variants: list | dict | None = None) -> dict[str, dict]:
    """name -> overrides: the study's built-in list, or the given names (and/or a dict of custom ones)."""
    if isinstance(variants, dict):
        return dict(variants)
    names = list(variants or [])
    if not names:
        if study not in STUDIES:
            raise ValueError(f"study: {study!r} has no built-in variant list ({sorted(STUDIES)}); "
                             f"pass the variants to run")
        names = STUDIES[study]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise ValueError(f"variants: unknown names {unknown}; expected some of {list(VARIANTS)}")
    return {n: VARIANTS[n] for n in names}
