"""Selective scan: chunked SSD against the step-by-step recurrence; the mixer's layout."""

from __future__ import annotations

import pytest
import torch

from lassm.model.ssm import Mamba2Mixer, causal_depthwise_conv, ssd_chunked, ssd_sequential


def scan_inputs(seed, b=2, length=37, h=3, p=4, n=5):
    g = torch.Generator().manual_seed(seed)
    kw = {"generator": g, "dtype": torch.float64}
    x = torch.randn(b, length, h, p, **kw)
    dt = torch.nn.functional.softplus(torch.randn(b, length, h, **kw))
    A = -torch.rand(h, **kw) * 4 - 0.5
    return x, dt, A, torch.randn(b, length, n, **kw), torch.randn(b, length, n, **kw), torch.randn(h, **kw)


@pytest.mark.parametrize("chunk", [1, 8, 16, 37, 64])
def test_chunked_ssd_equals_the_recurrence(chunk):
    x, dt, A, B, C, D = scan_inputs(chunk)
    ref = ssd_sequential(x, dt, A, B, C, D)
    out = ssd_chunked(x, dt, A, B, C, D, chunk_size=chunk)
    assert out.shape == ref.shape
    assert (out - ref).abs().max() <= 1e-10 * ref.abs().max()


def test_recurrence_by_hand_for_one_step_pair():
    x, dt, A, B, C, _ = scan_inputs(0, b=1, length=2, h=1, p=1, n=1)
    s1 = dt[0, 0, 0] * x[0, 0, 0, 0] * B[0, 0, 0]
    s2 = torch.exp(dt[0, 1, 0] * A[0]) * s1 + dt[0, 1, 0] * x[0, 1, 0, 0] * B[0, 1, 0]
    y = ssd_sequential(x, dt, A, B, C)
    assert torch.allclose(y[0, :, 0, 0], torch.stack([s1 * C[0, 0, 0], s2 * C[0, 1, 0]]))


def test_long_decays_stay_accurate_in_float32():
    x, dt, A, B, C, D = scan_inputs(1, length=300)
    dt = dt * 3  # strong decay: cumulative log-decay of several hundred within a chunk
    ref = ssd_sequential(x, dt, A, B, C, D)
    out = ssd_chunked(*(t.float() for t in (x, dt, A, B, C, D)), chunk_size=256)
    assert (out.double() - ref).abs().max() <= 1e-4 * ref.abs().max()


def test_causal_conv_matches_its_formula():
    g = torch.Generator().manual_seed(0)
    x, w = torch.randn(2, 9, 6, generator=g), torch.randn(6, 1, 4, generator=g)
    bias = torch.randn(6, generator=g)
    out = causal_depthwise_conv(x, w, bias)
    ref = torch.zeros_like(x)
    for t in range(9):
        for j in range(4):
            if t - 3 + j >= 0:
                ref[:, t] += w[:, 0, j] * x[:, t - 3 + j]
    assert torch.allclose(out, torch.nn.functional.silu(ref + bias), atol=1e-6)


def test_mixer_has_the_reference_layout_and_is_causal():
    torch.manual_seed(0)
    mixer = Mamba2Mixer()
    shapes = {k: tuple(v.shape) for k, v in mixer.state_dict().items()}
    assert shapes == {"dt_bias": (8,), "A_log": (8,), "D": (8,), "conv1d.weight": (640, 1, 4),
                      "conv1d.bias": (640,), "in_proj.weight": (1160, 256), "norm.weight": (512,),
                      "norm.bias": (512,), "out_proj.weight": (256, 512)}
    assert (torch.nn.functional.softplus(mixer.dt_bias) >= 1e-4 - 1e-9).all()
    assert ((-torch.exp(mixer.A_log) <= -1) & (-torch.exp(mixer.A_log) >= -16)).all()
    u = torch.randn(2, 30, 256)
    out = mixer(u)
    assert out.shape == (2, 30, 256)
    u2 = u.clone()
    u2[:, 20:] += 1.0  # changing the future leaves the past unchanged
    assert torch.allclose(mixer(u2)[:, :20], out[:, :20], atol=1e-5)
    assert not torch.allclose(mixer(u2)[:, 20:], out[:, 20:])


def test_mixer_rejects_a_head_dim_that_does_not_divide():
    with pytest.raises(ValueError, match="head_dim"):
        Mamba2Mixer(d_model=256, head_dim=60)
