"""aten operators per training step and stage: the CPU's proxy for the GPU's kernel launches.

A launch-bound GPU step costs about one kernel launch per aten operator that does arithmetic, so the
operators one training step dispatches on the CPU count what the GPU would launch, without a GPU.
:func:`count_ops` runs a call under torch.profiler (CPU activity) while a stage listener
(:mod:`lassm.model.stages`) wraps every stage in a ``record_function`` range, and charges each aten
operator to the innermost stage around it (``other`` when none is).

Two counts per stage: ``ops``, every aten operator the profiler records (composites such as
``aten::linear`` and the ops they call both count), and ``leaf``, the operators that do work (not
only views, ``empty`` and other metadata, :data:`METADATA`) and call no other operator that does:
closest to the kernels a GPU would launch.
"""

from __future__ import annotations

import contextlib

import torch

from ..model import stages

PREFIX = "stage::"
# leaf operators that launch no kernel on a GPU: allocation, views and metadata
METADATA = frozenset(f"aten::{name}" for name in (
    "empty", "empty_strided", "empty_like", "view", "_unsafe_view", "as_strided", "reshape", "_reshape_alias",
    "expand", "expand_as", "t", "transpose", "permute", "squeeze", "unsqueeze", "select", "slice", "detach",
    "alias", "resolve_conj", "resolve_neg", "unbind", "split", "split_with_sizes", "narrow", "lift_fresh",
    "result_type", "view_as", "unflatten", "flatten", "chunk", "movedim", "numpy_T", "contiguous",
    "_has_compatible_shallow_copy_type", "is_nonzero", "item", "_local_scalar_dense", "diagonal", "unfold",
    "set_", "resize_", "to", "lift_fresh_copy", "stride", "size", "sym_size", "sym_stride", "dim",
    "is_same_size", "_nested_tensor_from_mask_left_aligned", "broadcast_tensors", "meshgrid", "real",
    "imag", "_neg_view", "_conj", "matrix_H", "mT", "mH", "adjoint", "swapaxes", "swapdims", "indices",
    "values", "split_copy", "view_as_real", "view_as_complex", "requires_grad_", "retain_grad",
    "output_nr", "_version", "is_leaf", "data", "set_data", "_fw_primal", "_make_dual", "_unpack_dual",
))


class _Ranges:
    """Stage listener: every stage becomes a profiler range named ``stage::<name>``."""

    @contextlib.contextmanager
    def span(self, name: str):
        with torch.profiler.record_function(PREFIX + name):
            yield


def _stage_of(event) -> str:
    parent = event.cpu_parent
    while parent is not None:
        if parent.name.startswith(PREFIX):
            return parent.name[len(PREFIX):]
        parent = parent.cpu_parent
    return "other"


def _works(event) -> bool:
    """Whether the operator, or one it calls, does more than metadata."""
    calls = (c for c in event.cpu_children if c.name.startswith("aten::"))
    return event.name not in METADATA or any(_works(c) for c in calls)


def count_ops(fn) -> dict[str, dict[str, int]]:
    """``{stage: {"ops": n, "leaf": m}}`` of one call of ``fn`` (after one untimed warm-up call), plus
    ``"total"``; stages in the order they first ran."""
    from torch.profiler import ProfilerActivity, profile

    fn()
    listener = _Ranges()
    stages.add_listener(listener)
    try:
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            fn()
    finally:
        stages.remove_listener(listener)
    counts: dict[str, dict[str, int]] = {}
    for event in prof.events():
        if event.name.startswith(PREFIX):
            counts.setdefault(event.name[len(PREFIX):], {"ops": 0, "leaf": 0})
        if not event.name.startswith("aten::"):
            continue
        row = counts.setdefault(_stage_of(event), {"ops": 0, "leaf": 0})
        row["ops"] += 1
        calls = [c for c in event.cpu_children if c.name.startswith("aten::")]
        row["leaf"] += event.name not in METADATA and not any(_works(c) for c in calls)
    counts["total"] = {k: sum(r[k] for r in counts.values()) for k in ("ops", "leaf")}
    return counts


def format_ops(columns: dict[str, dict[str, dict[str, int]]]) -> str:
    """Table of :func:`count_ops` results, one column pair (ops, leaf) per named run."""
    names = list(dict.fromkeys(n for c in columns.values() for n in c if n != "total")) + ["total"]
    lines = [f"{'stage':20}" + "".join(f"{h + ' ops':>16}{'leaf':>8}" for h in columns)]
    for n in names:
        cells = "".join(f"{c[n]['ops']:>16,}{c[n]['leaf']:>8,}" if n in c else f"{'-':>16}{'-':>8}"
                        for c in columns.values())
        lines.append(f"{n:20}" + cells)
    return "\n".join(lines)
