"""The generator's low-level operations: upfirdn2d's closed-form backward (first and second order), the two
forms of the modulated convolution, and the official precision policy's choice of blocks."""

from __future__ import annotations

import pytest
import torch

from draggan.networks import Generator
from draggan.ops import _upfirdn2d, make_resample_filter, modulated_conv2d, upfirdn2d


@pytest.mark.parametrize("up,down,pad", [(1, 1, (1, 2, 2, 1)), (2, 1, (2, 1, 2, 1)), (1, 2, (1, 1, 1, 1)),
                                         (2, 2, (0, -1, 1, 0)), (1, 1, (-1, 0, 0, -1))])
def test_upfirdn2d_gradients_of_any_order_equal_autograds(up, down, pad):
    torch.manual_seed(0)
    f = make_resample_filter().double()
    x = torch.randn(2, 3, 7, 6, dtype=torch.float64, requires_grad=True)
    w = torch.randn_like(_upfirdn2d(x, f, up, down, pad, 1.5, False))

    def grads(op):
        y = (op(x).square() * w).sum()  # not linear in x, so that the gradient has a gradient
        (g,) = torch.autograd.grad(y, x, create_graph=True)
        (gg,) = torch.autograd.grad(g.square().sum(), x)  # what the R1 penalty differentiates
        return y, g, gg

    ours = grads(lambda t: upfirdn2d(t, f, up=up, down=down, pad=pad, gain=1.5))
    plain = grads(lambda t: _upfirdn2d(t, f, up, down, pad, 1.5, False))  # autograd of the plain ops
    for a, b in zip(ours, plain):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("up,demodulate,noise", [(1, True, True), (2, True, True), (1, False, False)])
def test_the_fused_and_unfused_modulated_convolutions_agree(up, demodulate, noise):
    torch.manual_seed(1)
    x, weight, styles = torch.randn(3, 8, 9, 9), torch.randn(5, 8, 3, 3), torch.randn(3, 8)
    kw = dict(up=up, padding=1, resample_filter=make_resample_filter(), demodulate=demodulate,
              noise=torch.randn(9 * up, 9 * up) if noise else None)
    fused = modulated_conv2d(x, weight, styles, fused=True, **kw)
    unfused = modulated_conv2d(x, weight, styles, fused=False, **kw)
    torch.testing.assert_close(fused, unfused, rtol=1e-4, atol=1e-4)


def test_the_precision_policy_names_the_official_blocks():
    G = Generator(z_dim=8, c_dim=0, w_dim=8, img_resolution=512, mapping_kwargs=dict(num_layers=1),
                  synthesis_kwargs=dict(channel_base=512, channel_max=8, num_fp16_res=4))
    cuda, cpu = torch.device("cuda"), torch.device("cpu")  # a device object; no GPU is needed to ask
    half = [b.resolution for b in G.synthesis.blocks if b.dtype(cuda) == torch.float16]
    assert half == [64, 128, 256, 512]  # the official rule: the top num_fp16_res resolutions, 8 px at least
    assert all(b.dtype(cpu) == torch.float32 for b in G.synthesis.blocks)  # never on the CPU
    assert all(b.dtype(cuda, force_fp32=True) == torch.float32 for b in G.synthesis.blocks)
