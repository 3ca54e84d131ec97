"""MinkowskiEngine -> lassm conversion against a direct reading of MinkowskiEngine's conv rule, and
MinkowskiEngine-keyed checkpoints (Mask3D's backbone, the authors' ScanNet200 model) through every loader."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from lassm import config, inference, predict, train
from lassm.data.io import DataError
from lassm.model import LaSSM, Res16UNet34C
from lassm.model.checkpoint import (
    load_lassm_checkpoint,
    load_minkowski_backbone,
    minkowski_kernel_to_spconv,
    minkowski_to_lassm,
)
from lassm.sparse import SparseConv3d, SparseInverseConv3d, SparseTensor, SubMConv3d


def me_offsets(kernel: int):
    """MinkowskiEngine's kernel_region order: axis 0 (x) varies fastest."""
    steps = range(-(kernel // 2), kernel // 2 + 1) if kernel % 2 else range(kernel)
    return [(x, y, z) for z, y, x in itertools.product(steps, repeat=3)]


def me_conv(feats, coords, out_coords, kernel_weights, kernel, scale_in=1, scale_out=1, transposed=False):
    """out[o] = sum_m in[o * s_out / s_in + offset_m] @ kernel[m]  (or the transposed map)."""
    index = {tuple(c): i for i, c in enumerate(coords.tolist())}
    out = torch.zeros(len(out_coords), kernel_weights.shape[2], dtype=feats.dtype)
    for o, (b, *p) in enumerate(out_coords.tolist()):
        for m, off in enumerate(me_offsets(kernel)):
            if transposed:  # fine output o receives from coarse c where o = 2c + off
                if all((p[a] - off[a]) % 2 == 0 for a in range(3)):
                    src = index.get((b, *[(p[a] - off[a]) // 2 for a in range(3)]))
                else:
                    src = None
            else:
                src = index.get((b, *[p[a] * scale_out // scale_in + off[a] for a in range(3)]))
            if src is not None:
                out[o] += feats[src] @ kernel_weights[m]
    return out


def test_converted_kernels_reproduce_minkowski_convolutions():
    g = torch.Generator().manual_seed(0)
    c = torch.unique(torch.randint(0, 9, (250, 4), generator=g), dim=0)
    c[:, 0] %= 2
    coords = torch.unique(c, dim=0).int()
    feats = torch.randn(len(coords), 3, generator=g, dtype=torch.float64)
    x = SparseTensor.from_voxels(feats, coords, (10, 10, 10), backend="torch")
    for kernel in (3, 5):
        me = torch.randn(kernel ** 3, 3, 4, generator=g, dtype=torch.float64)
        conv = SubMConv3d(3, 4, kernel).double()
        conv.weight.data = minkowski_kernel_to_spconv(me)
        assert torch.allclose(conv(x).feats, me_conv(feats, coords, coords, me, kernel))
    me1 = torch.randn(3, 4, generator=g, dtype=torch.float64)  # 1x1 conv: (C_in, C_out)
    conv = SubMConv3d(3, 4, 1).double()
    conv.weight.data = minkowski_kernel_to_spconv(me1)
    assert torch.allclose(conv(x).feats, feats @ me1)
    me_down = torch.randn(8, 3, 5, generator=g, dtype=torch.float64)
    down = SparseConv3d(3, 5, indice_key="d").double()
    down.weight.data = minkowski_kernel_to_spconv(me_down)
    y = down(x)
    assert torch.allclose(y.feats, me_conv(feats, coords, y.coords, me_down, 2, 1, 2))
    me_up = torch.randn(8, 5, 2, generator=g, dtype=torch.float64)
    up = SparseInverseConv3d(5, 2, indice_key="d").double()
    up.weight.data = minkowski_kernel_to_spconv(me_up)
    assert torch.allclose(up(y).feats, me_conv(y.feats, y.coords, coords, me_up, 2, transposed=True))


def test_kernel_offsets_follow_minkowski_order_on_one_offset_kernels():
    """MinkowskiEngine's rule written out by hand: out(p) = sum_i in(p * s_out / s_in + offset_i) W_i, the
    offsets i enumerated x fastest, so for k=3 offset (dx, dy, dz) is row (dx+1) + 3 (dy+1) + 9 (dz+1) and
    for the stride-2 k=2 kernel (dx, dy, dz) is row dx + 2 dy + 4 dz. Kernels with a single non-zero row at
    an offset that is no mirror or permutation of itself pick out one neighbour."""
    grid = [[0, x, y, z] for x in range(4) for y in range(4) for z in range(4)]
    coords = torch.tensor(grid, dtype=torch.int32)
    feats = torch.arange(len(coords), dtype=torch.float64).unsqueeze(1) * torch.tensor([[1.0, -2.0]])
    at = {tuple(c[1:]): i for i, c in enumerate(coords.tolist())}
    x = SparseTensor.from_voxels(feats, coords, (4, 4, 4), backend="torch")
    mix = torch.tensor([[1.0, 3.0, 0.0], [0.5, 0.0, -1.0]], dtype=torch.float64)  # (C_in 2, C_out 3)
    for offset in ((1, -1, 0), (0, 1, -1), (-1, 0, 1)):
        me = torch.zeros(27, 2, 3, dtype=torch.float64)
        me[(offset[0] + 1) + 3 * (offset[1] + 1) + 9 * (offset[2] + 1)] = mix
        conv = SubMConv3d(2, 3, 3).double()
        conv.weight.data = minkowski_kernel_to_spconv(me)
        out = conv(x).feats
        for i, c in enumerate(coords[:, 1:].tolist()):
            source = at.get(tuple(a + d for a, d in zip(c, offset, strict=True)))
            expected = feats[source] @ mix if source is not None else torch.zeros(3, dtype=torch.float64)
            assert torch.allclose(out[i], expected), (offset, c)
    me = torch.zeros(8, 2, 3, dtype=torch.float64)
    me[1 + 0 + 4] = mix  # offset (1, 0, 1)
    down = SparseConv3d(2, 3, indice_key="d").double()
    down.weight.data = minkowski_kernel_to_spconv(me)
    y = down(x)
    for i, c in enumerate(y.coords[:, 1:].tolist()):
        assert torch.allclose(y.feats[i], feats[at[(2 * c[0] + 1, 2 * c[1], 2 * c[2] + 1)]] @ mix)


def to_minkowski(state: dict, prefix: str = "backbone.") -> dict:
    """The inverse of the conversion, for the keys under ``prefix`` (the rest is kept as it is): what a
    MinkowskiEngine-trained model's state_dict holds. Kernels (K, C_in, C_out) with x fastest, 1x1x1 ones
    (C_in, C_out), norms under ``.bn``."""
    me = {}
    for key, value in state.items():
        if not key.startswith(prefix):
            me[key] = value
            continue
        module, field = key.rsplit(".", 1)
        if field == "weight" and value.dim() == 5:
            k = value.shape[1]
            kernel = value.permute(3, 2, 1, 4, 0).reshape(k ** 3, value.shape[4], value.shape[0])
            if k == 1:
                kernel = value.reshape(value.shape[4], value.shape[0])
            me[f"{module}.kernel"] = kernel
        else:
            me[f"{module}.bn.{field}"] = value
    return me


def test_state_dict_mapping_and_strict_loading(tmp_path):
    model = Res16UNet34C()
    # a MinkowskiEngine-style file: kernels (K, C_in, C_out), norms under .bn, a final layer
    me = to_minkowski({f"backbone.{k}": v for k, v in model.state_dict().items()})
    me = {f"module.{k}": v for k, v in me.items()}
    me["module.backbone.final.kernel"] = torch.zeros(96, 200)
    converted = minkowski_to_lassm(me, "backbone.")
    assert set(converted) == {f"backbone.{k}" for k in model.state_dict()}
    for key, value in model.state_dict().items():
        assert torch.equal(converted[f"backbone.{key}"], value), key
    torch.save({"state_dict": me}, tmp_path / "mask3d.pth")
    fresh = Res16UNet34C()
    load_minkowski_backbone(fresh, tmp_path / "mask3d.pth")
    assert all(torch.equal(fresh.state_dict()[k], v) for k, v in model.state_dict().items())
    renamed = {k.replace("backbone.", "unet."): v for k, v in me.items()}
    torch.save({"state_dict": renamed}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="no keys start with 'backbone.'"):
        load_minkowski_backbone(fresh, tmp_path / "bad.pth")
    with pytest.raises(DataError, match="missing.pth"):
        load_minkowski_backbone(fresh, tmp_path / "missing.pth")


# ------------------------------------------------------------ ScanNet200: MinkowskiEngine files everywhere


@pytest.fixture(scope="module")
def scannet200():
    """The scannet200 preset's model (Res16UNet34C) in eval mode, its norms given statistics and affine
    parameters away from 1 and 0, so that a swapped or dropped norm entry changes the output."""
    torch.manual_seed(0)
    cfg = config.scannet200()
    model = LaSSM(cfg.model).eval()
    with torch.no_grad():
        for name, buffer in model.backbone.named_buffers():
            if name.endswith("running_mean"):
                buffer.normal_(0, 0.1)
            elif name.endswith("running_var"):
                buffer.uniform_(0.5, 1.5)
        for name, param in model.backbone.named_parameters():
            if param.dim() == 1:
                param.uniform_(0.8, 1.2) if name.endswith("weight") else param.normal_(0, 0.1)
    return cfg, model


def voxels(seed: int = 0, count: int = 300) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A small scene of (N, 3) colour features, (N, 3) unique grid coordinates and its offset."""
    g = torch.Generator().manual_seed(seed)
    grid = torch.unique(torch.randint(0, 24, (count, 3), generator=g), dim=0)
    return torch.randn(len(grid), 3, generator=g), grid, torch.tensor([len(grid)])


@torch.no_grad()
def test_mask3d_backbone_initialises_a_run_and_gives_the_same_features(scannet200, tmp_path, capsys):
    cfg, model = scannet200
    backbone = {k: v for k, v in model.state_dict().items() if k.startswith("backbone.")}
    me = to_minkowski(backbone)
    me["backbone.final.kernel"], me["backbone.final.bias"] = torch.randn(96, 200), torch.randn(1, 200)
    torch.save({"state_dict": me}, tmp_path / "mask3d_scannet200.pth")
    assert cfg.train.init_weights == "weights/mask3d_scannet200.pth" and cfg.train.skip_keys == ()
    tc = config.scannet200().train
    tc.init_weights = str(tmp_path / "mask3d_scannet200.pth")
    fresh = LaSSM(cfg.model).eval()
    report = train.initialise(fresh, tc)
    assert report.minkowski and report.unexpected == [] and report.skipped == []
    assert report.missing == sorted(k for k in model.state_dict() if not k.startswith("backbone."))
    assert "mask3d_scannet200.pth (MinkowskiEngine layout, converted): " in capsys.readouterr().out
    feat, grid, offset = voxels()
    expected = model.backbone(feat, grid, offset)  # (N, 96)
    assert torch.equal(fresh.backbone(feat, grid, offset), expected)
    # a bare Res16UNet34C file (no backbone. prefix), already loaded
    bare = LaSSM(cfg.model).eval()
    load_lassm_checkpoint(bare, {k.removeprefix("backbone."): v for k, v in me.items()})
    assert torch.equal(bare.backbone(feat, grid, offset), expected)
    untouched = LaSSM(cfg.model).eval()
    assert not torch.equal(untouched.backbone(feat, grid, offset), expected)  # the loads did something


@torch.no_grad()
def test_authors_whole_scannet200_model_through_load_model_and_predict(scannet200, tmp_path):
    cfg, model = scannet200
    me = {f"module.{k}": v for k, v in to_minkowski(model.state_dict()).items()}  # Pointcept's DDP keys
    assert any(k.startswith("module.decoder.") for k in me) and "module.backbone.bn0.bn.weight" in me
    torch.save({"epoch": 170, "state_dict": me}, tmp_path / "model_best.pth")
    loaded, loaded_cfg = inference.load_model(tmp_path / "model_best.pth", preset="scannet200", device="cpu")
    own = loaded.state_dict()
    assert set(own) == set(model.state_dict())
    assert all(torch.equal(own[k], v) for k, v in model.state_dict().items())
    g = torch.Generator().manual_seed(1)
    room = torch.rand(3000, 3, generator=g) * torch.tensor([3.0, 3.0, 1.0])
    scan = torch.cat([room, torch.rand(3000, 3, generator=g) * 255], 1).numpy()
    np.save(tmp_path / "room.npy", scan)
    scene, expected = predict.segment_scan(model, loaded_cfg, tmp_path / "room.npy", "cpu")
    batch = inference.prepare_input(scene, loaded_cfg, "cpu")
    ours, theirs = loaded(batch).decoder.stages[-1], model(batch).decoder.stages[-1]  # the final stage
    assert torch.equal(ours.labels[0], theirs.labels[0]) and torch.equal(ours.masks[0], theirs.masks[0])
    # predict: the file with --preset scannet200 loads (every parameter, or it refuses) and predicts the same
    rows = predict.run(tmp_path / "model_best.pth", tmp_path / "room.npy", tmp_path / "out",
                       preset="scannet200", device="cpu", html=False)
    assert rows[0]["status"] == "done"
    written = np.load(tmp_path / "out" / "room_instances.npz")
    assert np.array_equal(written["masks"], expected.masks.numpy())  # random weights: maybe no instances
    assert np.array_equal(written["scores"], expected.scores.numpy())


def test_misfitting_minkowski_kernels_are_refused_naming_file_and_key(scannet200, tmp_path):
    cfg, model = scannet200
    stem = "backbone.conv0p1s1"
    cases = {  # file -> (entries, what the message says)
        "cube.pth": ({f"{stem}.kernel": torch.zeros(100, 3, 32)},
                     rf"cube.pth: {stem}.kernel \(100, 3, 32\): kernel with 100 offsets is not a cube"),
        "volume.pth": ({f"{stem}.kernel": torch.zeros(27, 3, 32)},
                       rf"volume.pth: .*{stem}.kernel \(27, 3, 32\) is a 3x3x3, 3 -> 32 channels kernel "
                       rf"where the model's {stem}.weight is 5x5x5, 3 -> 32 channels"),
        "channels.pth": ({"module.backbone.block1.0.conv1.kernel": torch.zeros(27, 32, 64)},
                         r"channels.pth: .*block1.0.conv1.kernel \(27, 32, 64\) is a 3x3x3, 32 -> 64 "
                         r"channels kernel where the model's backbone.block1.0.conv1.weight is 3x3x3, "
                         r"32 -> 32"),
        "prefix.pth": ({"unet.conv0p1s1.kernel": torch.zeros(125, 3, 32)},
                       r"prefix.pth: none of its 1 entries is a parameter of LaSSM"),
    }
    for name, (entries, message) in cases.items():
        torch.save({"state_dict": entries}, tmp_path / name)
        with pytest.raises(ValueError, match=message):
            load_lassm_checkpoint(model, tmp_path / name)
    tc = config.scannet200().train
    tc.init_weights = str(tmp_path / "volume.pth")
    with pytest.raises(ValueError, match="volume.pth: .*3x3x3"):
        train.initialise(model, tc)
    with pytest.raises(DataError, match="channels.pth: .*32 -> 64"):
        inference.load_model(tmp_path / "channels.pth", preset="scannet200", device="cpu")


def test_a_missing_initial_weights_file_stops_the_run_saying_where_it_comes_from(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the recipe's path is relative: weights/ of the working folder
    tc = config.scannet200().train
    message = (r"train.init_weights: weights/mask3d_scannet200.pth not found \(Mask3D's .*oneformer3d"
               r".*init_weights=\"\"")
    with pytest.raises(FileNotFoundError, match=message):
        train.initialise(torch.nn.Linear(2, 2), tc)
    tc.init_weights = ""
    assert train.initialise(torch.nn.Linear(2, 2), tc) is None  # random weights: nothing to load
