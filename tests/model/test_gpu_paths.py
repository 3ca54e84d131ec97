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
    for key, value in cpu.items():
        assert float(gpu[key]) == pytest.approx(float(value), rel=1e-3, abs=1e-5), key
    assert all(p.grad is not None for p in model.parameters())


@cuda
def test_training_augmentation_on_the_gpu_repeats_and_picks_points_of_each_voxel():
    """The training pipeline on a GPU (host draws from the generator's companion, voxel representatives from
    U(0, 1) x count) gives the same batch for the same step seed and another for another seed; the
    representative of a voxel of n points is one of its n, each of them possible."""
    from test_lassm import blob_scene

    from lassm import augment
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
    picks = augment._below(counts, step_generator(0, 0, 5, 0, device))
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
