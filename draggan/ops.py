"""Low-level operations of the StyleGAN2 generator, in plain PyTorch.

Karras et al., "Analyzing and Improving the Image Quality of StyleGAN", CVPR 2020, and
"Training Generative Adversarial Networks with Limited Data", NeurIPS 2020.

Nothing here is compiled: every operation is a composition of standard PyTorch calls, so the
generator runs unchanged on CPU, CUDA and Apple MPS. The arithmetic follows the official
reference path (zero insertion, padding, FIR filtering, decimation), so the numbers agree with
official checkpoints to float32 rounding.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

LRELU_SLOPE = 0.2  # negative slope of the leaky ReLU used throughout StyleGAN2
LRELU_GAIN = math.sqrt(2.0)  # gain that keeps the activations' second moment after a leaky ReLU


def assert_shape(tensor: torch.Tensor, shape: Sequence[int | None], name: str = "tensor") -> None:
    """Raise a ValueError unless `tensor` has `shape` (None matches any size)."""
    if tensor.ndim != len(shape) or any(s is not None and s != t for s, t in zip(shape, tensor.shape)):
        raise ValueError(f"{name} has shape {list(tensor.shape)}, expected {list(shape)} (None = any)")


def make_resample_filter(taps: Sequence[float] = (1, 3, 3, 1)) -> torch.Tensor:
    """The 2-D low-pass filter of StyleGAN2: the outer product of `taps`, normalised to sum 1."""
    f = torch.as_tensor(taps, dtype=torch.float32)
    if f.ndim == 1:
        f = torch.outer(f, f)
    return f / f.sum()


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """Scale `x` so that its mean square along `dim` is one."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


def bias_act(
    x: torch.Tensor,
    bias: torch.Tensor | None,
    *,
    act: str = "linear",  # 'linear' or 'lrelu'
    gain: float = 1.0,  # multiplier after the activation
    clamp: float | None = None,  # clamp the result to [-clamp, clamp], None = no clamping
) -> torch.Tensor:
    """Add a per-channel bias (channels on dim 1), apply the activation, scale, clamp."""
    if bias is not None:
        x = x + bias.reshape([1, -1] + [1] * (x.ndim - 2))
    if act == "lrelu":
        x = F.leaky_relu(x, LRELU_SLOPE)
    elif act != "linear":
        raise ValueError(f"unknown activation {act!r} (expected 'linear' or 'lrelu')")
    if gain != 1:
        x = x * gain
    if clamp is not None and clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return x


def _upfirdn2d(x: torch.Tensor, f: torch.Tensor, up: int, down: int, pad: Sequence[int], gain: float,
               flip_filter: bool) -> torch.Tensor:
    n, c, h, w = x.shape
    if up > 1:
        x = x.reshape(n, c, h, 1, w, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
        x = x.reshape(n, c, h * up, w * up)
    px0, px1, py0, py1 = pad
    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    x = x[:, :, max(-py0, 0): x.shape[2] - max(-py1, 0), max(-px0, 0): x.shape[3] - max(-px1, 0)]
    f = (f * (gain ** (f.ndim / 2))).to(x.dtype)
    if not flip_filter:
        f = f.flip([0, 1])
    x = F.conv2d(x, f[None, None].expand(c, 1, *f.shape), groups=c)
    if down > 1:
        x = x[:, :, ::down, ::down]
    return x


class _UpFirDn2d(torch.autograd.Function):
    """upfirdn2d with a closed-form backward that is itself an upfirdn2d (up and down swapped, the
    filter flipped, the padding transposed), as the official CUDA op has. Gradients of gradients
    (the R1 penalty) then stay FIR filters, instead of the double backward of a depthwise
    convolution, which cuDNN runs very slowly."""

    @staticmethod
    def forward(ctx, x, f, up, down, pad, gain, flip_filter):
        ctx.save_for_backward(f)
        ctx.args = (up, down, tuple(pad), gain, flip_filter, x.shape[2], x.shape[3])
        y = _upfirdn2d(x, f, up, down, pad, gain, flip_filter)
        ctx.out_hw = (y.shape[2], y.shape[3])
        return y

    @staticmethod
    def backward(ctx, dy):
        (f,) = ctx.saved_tensors
        up, down, (px0, px1, py0, py1), gain, flip_filter, ih, iw = ctx.args
        oh, ow = ctx.out_hw
        fh, fw = f.shape
        pad = [fw - px0 - 1, iw * up - ow * down + px0 - up + 1,
               fh - py0 - 1, ih * up - oh * down + py0 - up + 1]
        dx = _UpFirDn2d.apply(dy, f, down, up, pad, gain, not flip_filter)
        return dx, None, None, None, None, None, None


def upfirdn2d(
    x: torch.Tensor,
    f: torch.Tensor,
    *,
    up: int = 1,  # upsampling factor (zero insertion)
    down: int = 1,  # downsampling factor (decimation)
    pad: Sequence[int] = (0, 0, 0, 0),  # (x0, x1, y0, y1) padding after upsampling; negative crops
    gain: float = 1.0,  # overall gain of the filter
    flip_filter: bool = False,  # False = true convolution (the filter is flipped), True = correlation
) -> torch.Tensor:
    """Upsample by zero insertion, pad, apply the 2-D FIR filter `f` per channel, downsample.

    Differentiable to any order; its backward is another upfirdn2d (see `_UpFirDn2d`).
    """
    if not (x.requires_grad or f.requires_grad) or not torch.is_grad_enabled():
        return _upfirdn2d(x, f, up, down, pad, gain, flip_filter)
    return _UpFirDn2d.apply(x, f, up, down, list(pad), gain, flip_filter)


def upsample2d(x: torch.Tensor, f: torch.Tensor, up: int = 2) -> torch.Tensor:
    """Upsample by `up` with the low-pass filter `f`, keeping the signal's level."""
    fh, fw = f.shape
    pad = [(fw + up - 1) // 2, (fw - up) // 2, (fh + up - 1) // 2, (fh - up) // 2]
    return upfirdn2d(x, f, up=up, pad=pad, gain=up * up)


def _conv_resample(x: torch.Tensor, w: torch.Tensor, *, groups: int, up: int, padding: int,
                   resample_filter: torch.Tensor | None) -> torch.Tensor:
    """A grouped convolution of `x` with `w` [groups * O, I, k, k], after upsampling by `up` (1 or 2)."""
    if up == 1:
        return F.conv2d(x, w, padding=padding, groups=groups)
    if resample_filter is None:
        raise ValueError("modulated_conv2d with up > 1 needs a resample_filter")
    # Transposed convolution of stride `up` (weights laid out [in, out] per group), then the
    # low-pass filter with the padding that centres the result on the upsampled grid.
    go, in_ch, kh, kw = w.shape
    wt = w.reshape(groups, go // groups, in_ch, kh, kw).transpose(1, 2).reshape(groups * in_ch, go // groups, kh, kw)
    fh, fw = resample_filter.shape
    px0 = padding + (fw + up - 1) // 2 - (kw - 1)
    px1 = padding + (fw - up) // 2 - (kw - up)
    py0 = padding + (fh + up - 1) // 2 - (kh - 1)
    py1 = padding + (fh - up) // 2 - (kh - up)
    pxt = max(min(-px0, -px1), 0)
    pyt = max(min(-py0, -py1), 0)
    x = F.conv_transpose2d(x, wt, stride=up, padding=[pyt, pxt], groups=groups)
    return upfirdn2d(x, resample_filter, pad=[px0 + pxt, px1 + pxt, py0 + pyt, py1 + pyt], gain=up * up)


def modulated_conv2d(
    x: torch.Tensor,  # [N, I, H, W] input
    weight: torch.Tensor,  # [O, I, k, k] shared convolution weight
    styles: torch.Tensor,  # [N, I] per-sample modulation
    *,
    noise: torch.Tensor | None = None,  # added to the output, broadcast to [N, O, H', W']
    up: int = 1,  # 1 or 2: upsample with a transposed convolution and `resample_filter`
    padding: int = 0,  # padding of the convolution
    resample_filter: torch.Tensor | None = None,  # low-pass filter, needed when up > 1
    demodulate: bool = True,  # divide by the norm of each output's modulated weights
    fused: bool = True,  # one grouped convolution with per-sample weights (else scale activations around a shared one)
) -> torch.Tensor:
    """StyleGAN2's modulated (and demodulated) convolution.

    Each sample's weights are `weight * styles` (and, with `demodulate`, divided by their L2 norm per
    output channel). `fused` folds the batch into the channels so that one grouped convolution
    serves every sample (inference, batch 1); otherwise the activations are scaled before and after
    one convolution with the shared weight (training batches), which gives the same result. In
    float16 the weight and styles are first divided by their largest values, as in the official
    code, so that nothing overflows; demodulation cancels that scale.
    """
    n = x.shape[0]
    out_ch, in_ch, kh, kw = weight.shape
    assert_shape(x, [n, in_ch, None, None], "x")
    assert_shape(styles, [n, in_ch], "styles")
    if x.dtype == torch.float16 and demodulate:
        weight = weight * (1 / math.sqrt(in_ch * kh * kw) / weight.norm(float("inf"), dim=[1, 2, 3], keepdim=True))
        styles = styles / styles.norm(float("inf"), dim=1, keepdim=True)
    w = dcoefs = None
    if demodulate or fused:
        w = weight.unsqueeze(0) * styles.reshape(n, 1, in_ch, 1, 1)  # [N, O, I, k, k]
    if demodulate:
        dcoefs = (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()  # [N, O]
    if not fused:
        x = x * styles.to(x.dtype).reshape(n, -1, 1, 1)
        x = _conv_resample(x, weight.to(x.dtype), groups=1, up=up, padding=padding, resample_filter=resample_filter)
        if demodulate:
            x = x * dcoefs.to(x.dtype).reshape(n, -1, 1, 1)
        return x if noise is None else x + noise.to(x.dtype)
    if demodulate:
        w = w * dcoefs.reshape(n, out_ch, 1, 1, 1)
    x = x.reshape(1, n * in_ch, *x.shape[2:])
    x = _conv_resample(x, w.reshape(n * out_ch, in_ch, kh, kw).to(x.dtype), groups=n, up=up, padding=padding,
                       resample_filter=resample_filter)
    x = x.reshape(n, out_ch, *x.shape[2:])
    return x if noise is None else (x + noise).to(x.dtype)  # the official in-place add rounds once, in x's dtype
