"""CUDA graphs of the decoder's layer stack: inference (issue 9) and training (issue 22); both are
bound by kernel launches, not by the GPU's arithmetic.

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
  than the tables (over 64 m across) the layers run again op by op on the exact path (``DEEPER``).
- Any failure to capture (an op that synchronises, an unsupported kernel) falls back to op by op,
  with one warning.

Training (:func:`graphed_training_layers`) captures the same stack's forward *and* backward with
torch's :func:`torch.cuda.make_graphed_callables`: the forward replays one graph, and autograd's
backward node for it replays the other, giving the gradients of the queries, instance and mask features
and of every parameter of the layers and the prediction head. Shapes are bucketed more coarsely than
for inference (every graph holds its own activations for backward): queries to ``num_query`` (above it
like superpoints, in units of 64), superpoints to multiples of 256 up to 1,024, then to steps of about
19 % (four per doubling, :func:`train_bucket`); the
``DecoderConfig.train_graphs`` most recently used shapes stay captured, and after ``CAPTURE_BUDGET``
times that many captures, shapes not in the cache run op by op. The outputs come back stacked
per field, (T, B, Q, ...), cut to the batch's largest scene, as the batched loss takes them.

``DecoderConfig.cuda_graphs = False`` turns inference graphs off and ``train_graphs = 0`` training
graphs; ``tests/model/test_gpu_paths.py`` compares each with running op by op on the GPU.
"""

from __future__ import annotations

import collections
import contextlib
import math
import warnings
import weakref

import torch
import torch.nn.functional as F
from torch import nn

from .serialize import table_only
from .stages import paused

BUCKET = 256  # superpoints are padded up to a multiple of this
# what the graphed stacks return when some scene was deeper than the curve tables: the caller then runs the
# layers on the exact path directly (the table path op by op would only find the same overflow again)
DEEPER = "deeper than the curve tables"
# the decoder Prepared's tensor fields, in the order the padded inputs of both kinds of graph take them
_INPUTS = ("query", "pos", "inst_feats", "mask_feats", "coords", "lo", "hi", "valid", "sp_valid")
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


def run_graphed(decoder, p):
    """The decoder's layer stack on ``p`` (a ``Prepared`` on a GPU) through CUDA graphs: in eval mode without
    gradients :func:`graphed_layers` (a list per stage), in training with gradients
    :func:`graphed_training_layers` (a tuple of stacked fields); None where neither applies or a capture
    failed, DEEPER when a scene was deeper than the curve tables."""
    if not decoder.training and not torch.is_grad_enabled():
        return graphed_layers(decoder, p)
    if decoder.training and torch.is_grad_enabled():
        return graphed_training_layers(decoder, p)
    return None


def _padded(p):
    """``p`` (a decoder ``Prepared``) as the graph's static inputs want it: masks always present, S padded
    to the bucket (:func:`training_inputs`, which training pads with too)."""
    num_query, num_sp = p.query.shape[1], p.inst_feats.shape[1]
    padded = training_inputs(p, num_query, BUCKET * math.ceil(num_sp / BUCKET))
    return p._replace(**dict(zip(_INPUTS, padded, strict=True)))


def graphed_layers(decoder, p) -> list[tuple[torch.Tensor, ...]] | str | None:
    """:meth:`LaSSMDecoder.run_layers` through a cached CUDA graph; None when it cannot be used, DEEPER when
    a scene was deeper than the curve tables."""
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
        return DEEPER
    return outputs


# ------------------------------------------------------------------------------- training

_TRAIN: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # decoder -> OrderedDict{key: graphed}
_TRAIN_FAILED: weakref.WeakSet = weakref.WeakSet()  # decoders whose training capture failed
_CAPTURES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # decoder -> training captures so far
CAPTURE_BUDGET = 4  # times train_graphs: after that many captures, new shapes run op by op (no thrashing)


def train_bucket(n: int, step: int) -> int:
    """``n`` rounded up to a multiple of ``step`` up to 4 ``step`` (1,024 superpoints or 256 queries),
    above that to the next of 2^(k/4) times 4 ``step``, itself rounded up to ``step``: at most ~19 % of
    padding and four shapes per doubling, so a training run captures few graphs."""
    if n <= 4 * step:
        return step * max(1, math.ceil(n / step))
    k = math.ceil(4 * math.log2(n / (4 * step)) - 1e-9)
    return step * math.ceil(4 * 2 ** (k / 4))


class _LayerStack(nn.Module):
    """:meth:`LaSSMDecoder.run_layers` as a module whose parameters are exactly those it uses (the layers
    and the prediction head), taking the padded inputs as tensors, returning each output field stacked
    over the stages, (T, B, Q, ...), and the curve-table overflow flag."""

    def __init__(self, decoder, prepared):
        super().__init__()
        self.layers, self.out_norm, self.out_cls, self.out_center = (
            decoder.layers, decoder.out_norm, decoder.out_cls, decoder.out_center)
        if decoder.cfg.use_score:
            self.out_score = decoder.out_score
        object.__setattr__(self, "decoder", decoder)  # not a submodule: its other parameters stay out
        # the decoder's Prepared with no tensors in it: forward fills in the padded ones
        self.template = prepared._replace(**{name: None for name in _INPUTS}, counts=[], sizes=[])

    def forward(self, query, pos, inst_feats, mask_feats, coords, lo, hi, valid, sp_valid):
        p = self.template._replace(query=query, pos=pos, inst_feats=inst_feats, mask_feats=mask_feats,
                                   coords=coords, lo=lo, hi=hi, valid=valid, sp_valid=sp_valid)
        with table_only() as flags:
            stages = self.decoder.run_layers(p)
        overflow = (torch.stack(flags).any() if flags
                    else torch.zeros((), dtype=torch.bool, device=query.device))
        return (*(torch.stack(field) for field in zip(*stages, strict=True)), overflow)


def capture_stack(decoder, prepared, sample: tuple[torch.Tensor, ...]):
    """Forward and backward graphs of :class:`_LayerStack` for inputs shaped as ``sample`` (``prepared``: the
    decoder's ``Prepared`` they come from); returns the callable that replays them, taking the inputs and
    giving the stacked outputs and the overflow flag.

    The parameters enter the graphs as arguments, captured against aliases of them (the same memory, new
    autograd leaves), and are passed themselves at every call: their gradients then flow into ``.grad``
    as any others do, through DistributedDataParallel's hooks too. Captured against the parameters
    themselves, the capture fails under DDP, which keeps their gradient accumulators alive on the default
    stream (torch's AccumulateGrad stream warning).
    """
    stack = _LayerStack(decoder, prepared)
    names, params = zip(*stack.named_parameters(), strict=True)
    count = len(sample)

    def run(*args):  # the inputs, then the parameters
        return torch.func.functional_call(stack, dict(zip(names, args[count:], strict=True)), args[:count])

    aliases = tuple(q.detach().requires_grad_(q.requires_grad) for q in params)
    graphed = torch.cuda.make_graphed_callables(run, sample + aliases, allow_unused_input=True)
    return lambda *inputs: graphed(*inputs, *params)


def training_inputs(p, num_query: int, num_sp: int) -> tuple[torch.Tensor, ...]:
    """The decoder's ``Prepared`` ``p`` padded to ``num_query`` queries and ``num_sp`` superpoints, as the
    tensors :class:`_LayerStack` takes (padding differentiably: the gradients reach ``p``'s tensors);
    padding rows are zeros and False in the masks, exactly as for scenes smaller than the largest."""
    num_scenes, q, _ = p.query.shape
    s = p.inst_feats.shape[1]
    device = p.query.device

    def pad(t, rows):  # (B, n, ...) -> (B, rows, ...)
        return F.pad(t, (0, 0) * (t.dim() - 2) + (0, rows - t.shape[1]))

    valid = torch.ones(num_scenes, q, dtype=torch.bool, device=device) if p.valid is None else p.valid
    sp_valid = (torch.ones(num_scenes, s, dtype=torch.bool, device=device) if p.sp_valid is None
                else p.sp_valid)
    return (pad(p.query, num_query), pad(p.pos, num_query), pad(p.inst_feats, num_sp),
            pad(p.mask_feats, num_sp), pad(p.coords, num_sp), p.lo, p.hi, pad(valid, num_query),
            pad(sp_valid, num_sp))


def graphed_training_layers(decoder, p) -> tuple[torch.Tensor, ...] | str | None:
    """The layer stack of a training step through cached forward and backward CUDA graphs: (logits, masks,
    centres, positions[, scores]), each (T, B, Q, ...) with Q and S those of the batch's largest scene;
    None when graphs cannot be used here (capture failed once), DEEPER when a scene was deeper than the
    curve tables."""
    limit = decoder.cfg.train_graphs
    if decoder in _TRAIN_FAILED or limit <= 0:
        return None
    num_query, num_sp = p.query.shape[1], p.inst_feats.shape[1]
    padded_query = train_bucket(num_query, 64)
    if num_query <= decoder.cfg.num_query:  # the usual count (every scene sampled to num_query): exact
        padded_query = min(padded_query, decoder.cfg.num_query)
    inputs = training_inputs(p, padded_query, train_bucket(num_sp, 256))
    dtype = torch.get_autocast_dtype("cuda") if torch.is_autocast_enabled("cuda") else None
    key = (tuple(tuple(t.shape) for t in inputs[:5]), tuple(t.requires_grad for t in inputs[:5]),
           p.query.dtype, dtype, p.reference_range)
    cache = _TRAIN.setdefault(decoder, collections.OrderedDict())
    if key not in cache and _CAPTURES.get(decoder, 0) >= CAPTURE_BUDGET * limit:
        return None  # shapes keep changing beyond the cache: captures would cost more than they save
    try:
        if key not in cache:
            _CAPTURES[decoder] = _CAPTURES.get(decoder, 0) + 1
            if _CAPTURES[decoder] == CAPTURE_BUDGET * limit:
                warnings.warn(f"CUDA graphs of the training decoder: {_CAPTURES[decoder]} shapes captured; "
                              "further new shapes run op by op (raise model.decoder.train_graphs to keep "
                              "more)", stacklevel=2)
            while len(cache) >= limit:
                cache.popitem(last=False)  # the least recently used shape: its graphs and memory go
            sample = tuple(t.detach().clone().requires_grad_(t.requires_grad) for t in inputs)
            with paused(), _autocast(dtype):
                cache[key] = capture_stack(decoder, p, sample)
        cache.move_to_end(key)
        *fields, overflow = cache[key](*inputs)
    except Exception as err:  # noqa: BLE001 - any capture problem: fall back, the results stay right
        _TRAIN_FAILED.add(decoder)
        cache.clear()
        warnings.warn(f"CUDA graphs of the training decoder failed ({type(err).__name__}: {err}); running "
                      "its layers op by op", stacklevel=2)
        return None
    if bool(overflow):  # a scene deeper than the curve tables: the exact path instead
        return DEEPER
    logits, masks, *rest = fields  # masks (T, B, Q, S); the others (T, B, Q[, ...])
    return (logits[:, :, :num_query], masks[:, :, :num_query, :num_sp], *(f[:, :, :num_query] for f in rest))
