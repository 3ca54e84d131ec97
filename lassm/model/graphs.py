"""CUDA graphs of the decoder's layer stack for inference (issue 9: inference is launch-bound).

In eval mode the decoder's six layers and seven prediction heads are ~1,000 small kernels for one
scene; launched from Python they cost far more CPU time than the GPU needs to run them. Here the
stack (:meth:`LaSSMDecoder.run_layers`) is captured once per padded shape into a CUDA graph and
replayed: the same kernels on the same numbers, launched in one call.

- Shapes: queries are padded to the largest scene's count, superpoints up to a multiple of
  ``BUCKET``, so scenes of similar size share a graph (padding is masked exactly as in a batch of
  scenes of different sizes, see ``decoder.py``). One graph per (scenes, queries, padded superpoints,
  autocast dtype, centre normalisation).
- The serialization's host round trip (its curve depth) is replaced inside the graph by the
  table path plus a device flag (:func:`lassm.model.serialize.table_only`); if any scene was deeper
  than the tables (over 64 m across) the layers are simply run again op by op.
- Any failure to capture (an op that synchronises, an unsupported kernel) falls back to op by op,
  with one warning.

``DecoderConfig.cuda_graphs = False`` turns this off; ``tests/model/test_gpu_paths.py`` compares the
two on the GPU.
"""

from __future__ import annotations

import contextlib
import math
import warnings
import weakref

import torch

from .serialize import table_only
from .stages import paused

BUCKET = 256  # superpoints are padded up to a multiple of this
_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # decoder -> {shape key: _Graph}
_FAILED: weakref.WeakSet = weakref.WeakSet()  # decoders whose capture failed: they run op by op


def _autocast(dtype):
    """Autocast to ``dtype`` without its weight-cast cache: cached casts made outside a graph would be
    freed under it (torch's CUDA-graph notes); inside, every replay casts the weights itself."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=dtype, cache_enabled=False)


class _Graph:
    """One captured layer stack: its static inputs, the graph and its static outputs."""

    def __init__(self, decoder, example, amp_dtype):
        self.inputs = example
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream), paused(), table_only(), _autocast(amp_dtype):
            for _ in range(2):  # warm-up: Triton autotuning and the allocator, outside the capture
                decoder.run_layers(example)
        torch.cuda.current_stream().wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with paused(), table_only() as flags, torch.cuda.graph(self.graph), _autocast(amp_dtype):
            self.outputs = decoder.run_layers(example)
            self.overflow = torch.stack(flags).any() if flags else None

    def run(self, p) -> list[tuple[torch.Tensor, ...]]:
        for name in ("query", "pos", "inst_feats", "mask_feats", "coords", "lo", "hi", "valid", "sp_valid"):
            static, value = getattr(self.inputs, name), getattr(p, name)
            if value.shape == static.shape:
                static.copy_(value)
            else:  # pad: zeros, then the scene's rows
                static.zero_()
                static[tuple(slice(0, n) for n in value.shape)].copy_(value)
        self.graph.replay()
        return [tuple(t.clone() for t in stage) for stage in self.outputs]


def _padded(p):
    """``p`` (a decoder ``Prepared``) as the graph's static inputs want it: masks always present, S padded
    to the bucket."""
    num_scenes, num_query, _ = p.query.shape
    num_sp = p.inst_feats.shape[1]
    padded_sp = BUCKET * math.ceil(num_sp / BUCKET)
    device = p.query.device
    valid = p.valid if p.valid is not None else torch.ones(num_scenes, num_query, dtype=torch.bool,
                                                            device=device)
    sp_valid = torch.zeros(num_scenes, padded_sp, dtype=torch.bool, device=device)
    sp_valid[:, :num_sp] = True if p.sp_valid is None else p.sp_valid

    def pad(t):  # (B, S, ...) -> (B, padded S, ...), zeros after
        out = t.new_zeros((num_scenes, padded_sp, *t.shape[2:]))
        out[:, :num_sp] = t
        return out

    return p._replace(inst_feats=pad(p.inst_feats), mask_feats=pad(p.mask_feats), coords=pad(p.coords),
                      valid=valid, sp_valid=sp_valid)


def graphed_layers(decoder, p) -> list[tuple[torch.Tensor, ...]] | None:
    """:meth:`LaSSMDecoder.run_layers` through a cached CUDA graph; None when it cannot be used."""
    if decoder in _FAILED:
        return None
    p = _padded(p)
    dtype = torch.get_autocast_dtype("cuda") if torch.is_autocast_enabled("cuda") else None
    key = (tuple(p.query.shape), p.inst_feats.shape[1], p.query.dtype, dtype, p.reference_range)
    cache = _CACHE.setdefault(decoder, {})
    try:
        if key not in cache:
            cache[key] = _Graph(decoder, p, dtype)
        graph = cache[key]
        outputs = graph.run(p)
    except Exception as err:  # noqa: BLE001 - any capture problem: fall back, the results stay right
        _FAILED.add(decoder)
        cache.pop(key, None)
        warnings.warn(f"CUDA graph of the decoder layers failed ({type(err).__name__}: {err}); running them "
                      "op by op", stacklevel=2)
        return None
    if graph.overflow is not None and bool(graph.overflow):  # a scene deeper than the curve tables
        return None
    return outputs
