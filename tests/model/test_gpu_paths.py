"""Fast paths against their PyTorch references on a GPU (skipped without CUDA or mamba_ssm).

Run on the GPU machine: ``python -m pytest tests/model/test_gpu_paths.py``.
"""

from __future__ import annotations

import pytest
import torch

from lassm.config import DecoderConfig
from lassm.model.decoder import LaSSMDecoder
from lassm.model.ssm import Mamba2Mixer, selective_scan, ssd_sequential, triton_ssd

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
triton = pytest.mark.skipif(not torch.cuda.is_available() or triton_ssd() is None,
                            reason="needs CUDA and mamba_ssm's Triton SSD kernel")


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).abs().max() / b.double().abs().max())


@triton
@pytest.mark.parametrize("length", [1, 37, 400, 600])  # one step, below / at / above the 256 chunk
def test_triton_scan_matches_the_recurrence(length):
    g = torch.Generator().manual_seed(length)
    b, h, p, n = 2, 8, 64, 64
    x = torch.randn(b, length, h, p, generator=g)
    dt = torch.nn.functional.softplus(torch.randn(b, length, h, generator=g) - 2)
    A = -torch.rand(h, generator=g) * 15 - 1
    B, C = torch.randn(b, length, n, generator=g), torch.randn(b, length, n, generator=g)
    D = torch.ones(h)
    ref = ssd_sequential(*(t.double() for t in (x, dt, A, B, C, D)))
    fast = selective_scan(*(t.cuda() for t in (x, dt, A, B, C, D)), use_triton=True)
    torch_path = selective_scan(*(t.cuda() for t in (x, dt, A, B, C, D)), use_triton=False)
    assert rel(fast.cpu(), ref) < 5e-3  # the kernel's matmuls use TF32
    assert rel(torch_path.cpu(), ref) < 5e-3


@triton
def test_triton_scan_gradients_match_the_torch_path():
    """The backward kernels too run on one fixed configuration each (lassm.model.ssd_configs)."""
    g = torch.Generator().manual_seed(3)
    b, length, h, p, n = 2, 300, 8, 64, 64
    inputs = [torch.randn(b, length, h, p, generator=g),
              torch.nn.functional.softplus(torch.randn(b, length, h, generator=g) - 2),
              -torch.rand(h, generator=g) * 15 - 1,
              torch.randn(b, length, n, generator=g), torch.randn(b, length, n, generator=g), torch.ones(h)]
    weights = torch.randn(b, length, h, p, generator=g).cuda()
    grads = []
    for use_triton in (True, False):
        leaves = [t.cuda().requires_grad_() for t in inputs]
        (selective_scan(*leaves, use_triton=use_triton) * weights).sum().backward()
        grads.append([t.grad for t in leaves])
    for name, fast, slow in zip("x dt A B C D".split(), *grads, strict=True):
        assert rel(fast, slow) < 5e-3, name


@cuda
def test_the_sync_census_counts_each_host_synchronisation():
    from lassm.bench.model import sync_sites
    x = torch.ones(4, device="cuda")
    # regression: torch 2.11 also warns, once, that the debug mode is a prototype; that is no wait
    assert sum(sync_sites(lambda: x * 2, "cuda").values()) == 0
    sites = sync_sites(lambda: (x.sum().item(), x.tolist(), x * 2), "cuda")
    assert sum(sites.values()) == 2  # .item() and .tolist() wait; the product does not


@triton
def test_ssd_kernels_run_on_one_configuration_each():
    import sys

    from lassm.model.ssd_configs import SSD_MODULES, autotuned_kernels, choose_config
    seen = 0
    for module_name in SSD_MODULES:
        module = sys.modules.get(f"mamba_ssm.ops.triton.{module_name}")
        for name, kernel in (autotuned_kernels(module) if module else {}).items():
            assert len(kernel.configs) == 1, name
            assert choose_config(name, kernel.configs) is kernel.configs[0]
            seen += 1
    assert seen >= 10  # the scan's forward and backward kernels


@triton
def test_mixer_kernels_match_the_torch_path():
    torch.manual_seed(0)
    mixer = Mamba2Mixer().cuda()
    u = torch.randn(2, 400, 256, device="cuda")
    with torch.no_grad():
        fast = mixer(u)
        mixer.use_kernels = False
        slow = mixer(u)
    assert rel(fast, slow) < 5e-3


@cuda
@pytest.mark.parametrize("t_layer", [0, 3])
def test_decoder_on_the_gpu_matches_the_cpu(t_layer):
    torch.manual_seed(0)
    dec = LaSSMDecoder(DecoderConfig(t_layer=t_layer), in_channels=32, num_classes=18).eval()
    feats, coords = [torch.randn(3000, 32)], [torch.rand(3000, 3) * torch.tensor([8.0, 6.0, 3.0])]
    with torch.no_grad():
        cpu = dec(feats, coords)
        gpu = dec.cuda()([f.cuda() for f in feats], [c.cuda() for c in coords])
    assert torch.equal(cpu.select_idx[0], gpu.select_idx[0].cpu())
    for a, b in zip(cpu.stages, gpu.stages, strict=True):
        assert rel(b.masks[0].cpu(), a.masks[0]) < 2e-2 and rel(b.labels[0].cpu(), a.labels[0]) < 2e-2


@cuda
@pytest.mark.parametrize("num_points", [1, 2, 37, 1000, 16000, 70000])  # the last one takes the loop
def test_fps_kernel_matches_the_loop(num_points):
    from lassm.model.sampling import farthest_point_sampling

    g = torch.Generator().manual_seed(num_points)
    points = torch.rand(num_points, 3, generator=g) * torch.tensor([8.0, 6.0, 3.0])
    points[num_points // 2:][: num_points // 4] = points[0]  # coincident points: ties and repeats
    n = min(400, num_points)
    for start in {0, num_points - 1}:
        fast = farthest_point_sampling(points.cuda(), n, start=start)
        loop = farthest_point_sampling(points.cuda(), n, start=start, use_kernel=False)
        assert torch.equal(fast, loop)


@cuda
@pytest.mark.parametrize("t_layer,amp", [(3, False), (0, False), (3, True)])
def test_cuda_graph_layers_match_op_by_op(t_layer, amp):
    """Inference through the captured layer stack equals running it op by op: two scenes of different
    sizes (queries and superpoints padded), then a new scene of another size in the same bucket and
    a larger one (the graph is reused with new inputs, and a second graph is captured)."""
    from lassm.model import graphs

    torch.manual_seed(0)
    dec = LaSSMDecoder(DecoderConfig(t_layer=t_layer), in_channels=32, num_classes=18).cuda().eval()
    room = torch.tensor([8.0, 6.0, 3.0], device="cuda")

    def scenes(*sizes):
        return [torch.randn(n, 32, device="cuda") for n in sizes], [torch.rand(n, 3, device="cuda") * room
                                                                   for n in sizes]

    for sizes in [(1500, 1690), (1460, 1700), (2600,), (1500, 420)]:
        feats, coords = scenes(*sizes)
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.float16, enabled=amp):
            dec.cfg.cuda_graphs = True
            graphed = dec(feats, coords)
            dec.cfg.cuda_graphs = False
            eager = dec(feats, coords)
        assert dec not in graphs._FAILED
        for a, b in zip(graphed.stages, eager.stages, strict=True):
            for field in ("labels", "masks", "centres", "positions"):
                for x, y in zip(getattr(a, field), getattr(b, field), strict=True):
                    assert x.shape == y.shape and rel(x.float(), y.float()) < (2e-2 if amp else 1e-4), field
    assert len(graphs._CACHE[dec]) >= 2


@cuda
@pytest.mark.parametrize("amp", [False, True])
def test_training_cuda_graphs_match_op_by_op(amp):
    """A training forward and backward through the captured layer stack (forward and backward graphs)
    equals running it op by op: every stage's outputs, the gradients of the superpoint features and of
    every decoder parameter; two scenes of different sizes, then new inputs of the same bucket (the graphs
    are reused) and other sizes (more graphs are captured)."""
    from lassm.model import graphs

    torch.manual_seed(0)
    dec = LaSSMDecoder(DecoderConfig(t_layer=3), in_channels=32, num_classes=18).cuda().train()
    room = torch.tensor([8.0, 6.0, 3.0], device="cuda")
    weights = {}
    for sizes in [(1500, 1690), (1460, 1700), (2600, 1000), (1500, 420)]:
        feats = [torch.randn(n, 32, device="cuda") for n in sizes]
        coords = [torch.rand(n, 3, device="cuda") * room for n in sizes]
        runs = []
        for graphed in (True, False):
            dec.cfg.cuda_graphs = graphed
            dec.zero_grad(set_to_none=True)
            leaves = [f.clone().requires_grad_() for f in feats]
            with torch.autocast("cuda", dtype=torch.float16, enabled=amp):
                out = dec(leaves, coords)
            assert (out.stacked is not None) == graphed
            outputs = [x for st in out.stages for field in ("labels", "masks", "centres", "positions")
                       for x in getattr(st, field)]
            loss = 0
            for i, x in enumerate(outputs):  # a fixed random weighting of every output
                w = weights.setdefault((sizes, i), torch.randn(x.shape, device="cuda"))
                loss = loss + (x.float() * w).sum()
            loss.backward()
            runs.append(([x.detach().float() for x in outputs], [f.grad for f in leaves],
                         {n: q.grad.clone() for n, q in dec.named_parameters() if q.grad is not None}))
        (out_g, feat_g, par_g), (out_e, feat_e, par_e) = runs
        tol = 2e-2 if amp else 1e-3
        assert all(x.shape == y.shape and rel(x, y) < tol for x, y in zip(out_g, out_e, strict=True))
        assert all(rel(x, y) < tol for x, y in zip(feat_g, feat_e, strict=True))
        assert par_g.keys() == par_e.keys() and len(par_e) > 50
        # all parameter gradients as one vector (single parameters whose gradient nearly cancels, e.g. a
        # bias before a normalisation, differ more, relatively: the Triton scan's dots run in TF32)
        diff = torch.cat([(par_g[n] - par_e[n]).flatten() for n in par_e]).norm()
        size = torch.cat([par_e[n].flatten() for n in par_e]).norm()
        worst = sorted(((rel(par_g[n], par_e[n]), n) for n in par_e if par_e[n].abs().max() > 0),
                       reverse=True)
        assert float(diff / size) < tol, (float(diff / size), worst[:3])
    assert dec not in graphs._TRAIN_FAILED and len(graphs._TRAIN[dec]) >= 2


@cuda
def test_training_graphs_stop_capturing_once_shapes_keep_changing():
    """With one shape kept (train_graphs=1), every new shape evicts the last; after CAPTURE_BUDGET captures,
    a new shape runs op by op and a cached one still replays."""
    from lassm.model import graphs

    torch.manual_seed(2)
    dec = LaSSMDecoder(DecoderConfig(t_layer=3, train_graphs=1), in_channels=32, num_classes=18)
    dec = dec.cuda().train()

    def step(num_sp):
        feats, coords = [torch.randn(num_sp, 32, device="cuda")], [torch.rand(num_sp, 3, device="cuda") * 5]
        out = dec(feats, coords)
        out.stages[-1].masks[0].float().sum().backward()
        return out.stacked is not None

    sizes = [600 + 256 * i for i in range(graphs.CAPTURE_BUDGET)]  # each its own bucket
    assert all(step(n) for n in sizes[:-1])
    with pytest.warns(UserWarning, match="further new shapes run op by op"):
        assert step(sizes[-1])
    assert len(graphs._TRAIN[dec]) == 1 and graphs._CAPTURES[dec] == graphs.CAPTURE_BUDGET
    assert not step(sizes[0])  # evicted, and no captures left: op by op
    assert step(sizes[-1])  # the cached shape still replays


@cuda
def test_training_graph_replays_new_inputs_as_the_stack_runs_them_op_by_op():
    """The training graph, captured on one batch and replayed on another of the same padded shape, gives
    what the same padded layer stack computes op by op on that batch: forward outputs and every gradient
    (inputs and parameters) to float rounding, i.e. nothing of the capture's data is baked in."""
    from lassm.model import graphs

    torch.manual_seed(1)
    dec = LaSSMDecoder(DecoderConfig(t_layer=3), in_channels=32, num_classes=18).cuda().train()
    room = torch.tensor([8.0, 6.0, 3.0], device="cuda")

    def padded_inputs(sizes):
        feats = [torch.randn(n, 32, device="cuda") for n in sizes]
        coords = [torch.rand(n, 3, device="cuda") * room for n in sizes]
        prepared, _, _ = dec.prepare(feats, coords, [(c.min(0).values, c.max(0).values) for c in coords])
        inputs = graphs.training_inputs(prepared, 400, 1792)
        return prepared, tuple(t.detach().clone().requires_grad_(t.requires_grad) for t in inputs)

    first, sample = padded_inputs((1500, 1690))
    stack = graphs._LayerStack(dec, first)
    graphed = graphs.capture_stack(dec, first, sample)
    _, new = padded_inputs((1460, 1700))
    weights = None
    runs = []
    for fn in (graphed, stack):
        dec.zero_grad(set_to_none=True)
        leaves = tuple(t.detach().clone().requires_grad_(t.requires_grad) for t in new)
        *fields, _ = fn(*leaves)
        weights = weights or [torch.randn(f.shape, device="cuda") for f in fields]
        sum((f.float() * w).sum() for f, w in zip(fields, weights, strict=True)).backward()
        runs.append(([f.detach().clone() for f in fields], [t.grad for t in leaves if t.requires_grad],
                     [q.grad.clone() for q in stack.parameters() if q.grad is not None]))
    (out_g, in_g, par_g), (out_e, in_e, par_e) = runs
    assert len(in_g) == 3 and len(par_g) == len(par_e) == len(list(stack.parameters())) > 50
    # float rounding only (atomic sums in another order, other cuBLAS kernels in a capture: seen up to 3e-5
    # of a gradient's largest entry); data baked into the capture would differ by its own size
    assert all(rel(a, b) < 2e-4 for a, b in zip(out_g + in_g + par_g, out_e + in_e + par_e, strict=True))


@cuda
@pytest.mark.parametrize("training", [False, True])
def test_a_scene_deeper_than_the_curve_tables_runs_the_exact_path_once(training, monkeypatch):
    """A scene over 64 m across (deeper than the curve tables): the graph flags it and the layers run once
    more, on the exact path (not the table path first, which would only flag it again); the result is
    the exact path's."""
    torch.manual_seed(0)
    dec = LaSSMDecoder(DecoderConfig(t_layer=3), in_channels=32, num_classes=18).cuda().train(training)
    feats = [torch.randn(1500, 32, device="cuda")]
    coords = [torch.rand(1500, 3, device="cuda") * torch.tensor([150.0, 6.0, 3.0], device="cuda")]
    with torch.set_grad_enabled(training):
        dec(feats, coords)  # captures the graph(s) of this shape
        calls, run_layers = [], dec.run_layers
        monkeypatch.setattr(dec, "run_layers", lambda p: calls.append(1) or run_layers(p))
        graphed = dec(feats, coords)
        assert len(calls) == 1 and graphed.stacked is None
        dec.cfg.cuda_graphs = False
        eager = dec(feats, coords)  # op by op: the table path, flagged, then the exact path
        assert len(calls) == 3
    for a, b in zip(graphed.stages, eager.stages, strict=True):
        assert all(rel(x.float(), y.float()) < 1e-5 for x, y in zip(a.masks + a.labels, b.masks + b.labels,
                                                                    strict=True))


@cuda
def test_training_losses_on_the_gpu_match_the_cpu():
    """The whole training forward (backbone, pooling, decoder with its curve tables, targets, matching,
    losses) on a GPU equals the CPU's on the same packed batch; backward reaches every parameter."""
    from test_lassm import blob_scene, pack, small_model  # the same directory (pytest puts it on the path)

    batch = pack([blob_scene(40, seed=1), blob_scene(25, seed=2), blob_scene(30, seed=3, instances=False)])
    model = small_model()
    cpu = model(batch).losses
    model.cuda()
    gpu = model({k: v.cuda() for k, v in batch.items()}).losses
    gpu["loss"].backward()
    from lassm.model import graphs
    assert model.decoder not in graphs._TRAIN_FAILED  # the GPU ran the layers as training CUDA graphs
    for key, value in cpu.items():
        assert float(gpu[key]) == pytest.approx(float(value), rel=1e-3, abs=1e-5), key
    assert all(p.grad is not None for p in model.parameters())


@cuda
def test_training_graphs_capture_under_ddp_and_give_its_gradients(tmp_path):
    """Under DistributedDataParallel (one process, NCCL), which keeps every parameter's gradient
    accumulator alive, the training graphs still capture (they failed so before the parameters entered as
    arguments), and the gradients DDP hands the optimiser equal those of the model op by op."""
    import torch.distributed as dist
    from test_lassm import blob_scene, pack, small_model

    from lassm.model import graphs

    batch = {k: v.cuda() for k, v in pack([blob_scene(40, seed=1), blob_scene(25, seed=2)]).items()}
    dist.init_process_group("nccl", init_method=f"file://{tmp_path}/store", rank=0, world_size=1)
    try:
        grads = []
        for graphed in (True, False):
            torch.manual_seed(0)
            model = small_model().cuda()
            model.decoder.cfg.cuda_graphs = graphed
            ddp = torch.nn.parallel.DistributedDataParallel(  # as lassm.train wraps it
                model, device_ids=[torch.cuda.current_device()], broadcast_buffers=False,
                find_unused_parameters=False, gradient_as_bucket_view=True)
            for _ in range(2):  # the first step captures, the second replays
                model.zero_grad(set_to_none=True)
                ddp(batch).losses["loss"].backward()
            assert (model.decoder not in graphs._TRAIN_FAILED) and (model.decoder in graphs._TRAIN) == graphed
            grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    finally:
        dist.destroy_process_group()
    assert grads[0].keys() == grads[1].keys()
    assert all(rel(grads[0][n], grads[1][n]) < 1e-3 for n in grads[1] if grads[1][n].abs().max() > 0)


@cuda
def test_training_augmentation_on_the_gpu_repeats_and_picks_points_of_each_voxel():
    """The training pipeline on a GPU (host draws from the generator's companion, voxel representatives from
    U(0, 1) x count) gives the same batch for the same step seed and another for another seed; the
    representative of a voxel of n points is one of its n, each of them possible."""
    from test_lassm import blob_scene

    from lassm import augment, voxelize
    from lassm.config import augment_preset
    from lassm.inference import step_generator

    scene = {k: torch.as_tensor(v).cuda() for k, v in blob_scene(40, seed=4).items()}
    scene["color"] = scene["color"].float()
    pipeline = augment.train_pipeline(augment_preset("synthetic"))
    device = torch.device("cuda")
    runs = [pipeline(dict(scene), step_generator(0, 0, s, 0, device)) for s in (3, 3, 4)]
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])
    assert not torch.equal(runs[0]["grid_coord"], runs[2]["grid_coord"]) or \
        not torch.equal(runs[0]["feat"], runs[2]["feat"])
    counts = torch.tensor([1, 2, 3, 7, 1000], device="cuda").repeat(2000)  # (10000,)
    picks = voxelize._below(counts, step_generator(0, 0, 5, 0, device))
    assert bool(((picks >= 0) & (picks < counts)).all())
    assert torch.equal(torch.unique(picks[counts == 7]).cpu(), torch.arange(7))  # every point can be picked


@cuda
def test_prediction_with_the_geometric_split_takes_a_scene_of_gpu_tensors():
    """Regression: validation hands ``predict_arrays`` the scene as tensors on the GPU, and the geometric
    split (the tabletop preset's) read their coordinates with numpy, which stopped the preset's first
    validation on a GPU; the same scene as numpy arrays gives the same instances."""
    import numpy as np
    from test_lassm import blob_scene

    from lassm.config import preset
    from lassm.inference import predict_arrays
    from lassm.model.lassm import LaSSM

    cfg = preset("tabletop")
    cfg.model.backbone.sparse_backend = "torch"
    torch.manual_seed(0)
    model = LaSSM(cfg.model).cuda()
    scene = blob_scene(40, seed=5, points=150, spread=0.01)  # blobs the 1.5 cm clusters find
    scene["segment"] = np.where(scene["segment"] == 1, 0, 1)  # table 0, object 1 (mosd's two classes)
    scene["normal"] = np.tile(np.float32([0, 0, 1]), (len(scene["coord"]), 1))  # the convex division's input
    on_gpu = predict_arrays(model, cfg, {k: torch.as_tensor(v).cuda() for k, v in scene.items()}, "cuda")
    from_numpy = predict_arrays(model, cfg, scene, "cuda")
    assert cfg.model.postprocess.split_radius > 0 and len(on_gpu.scores) > 0
    assert torch.equal(on_gpu.masks.cpu(), from_numpy.masks.cpu())
