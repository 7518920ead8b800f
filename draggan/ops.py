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


def upfirdn2d(
    x: torch.Tensor,
    f: torch.Tensor,
    *,
    up: int = 1,  # upsampling factor (zero insertion)
    down: int = 1,  # downsampling factor (decimation)
    pad: Sequence[int] = (0, 0, 0, 0),  # (x0, x1, y0, y1) padding after upsampling; negative crops
    gain: float = 1.0,  # overall gain of the filter
) -> torch.Tensor:
    """Upsample by zero insertion, pad, apply the 2-D FIR filter `f` per channel, downsample.

    The filter is applied as a true convolution (it is flipped), which makes no difference for the
    symmetric filters of StyleGAN2.
    """
    n, c, h, w = x.shape
    if up > 1:
        x = x.reshape(n, c, h, 1, w, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
        x = x.reshape(n, c, h * up, w * up)
    px0, px1, py0, py1 = pad
    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    x = x[:, :, max(-py0, 0): x.shape[2] - max(-py1, 0), max(-px0, 0): x.shape[3] - max(-px1, 0)]
    f = (f * (gain ** (f.ndim / 2))).to(x.dtype).flip([0, 1])
    weight = f[None, None].expand(c, 1, *f.shape)
    x = F.conv2d(x, weight, groups=c)
    if down > 1:
        x = x[:, :, ::down, ::down]
    return x


def upsample2d(x: torch.Tensor, f: torch.Tensor, up: int = 2) -> torch.Tensor:
    """Upsample by `up` with the low-pass filter `f`, keeping the signal's level."""
    fh, fw = f.shape
    pad = [(fw + up - 1) // 2, (fw - up) // 2, (fh + up - 1) // 2, (fh - up) // 2]
    return upfirdn2d(x, f, up=up, pad=pad, gain=up * up)


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
) -> torch.Tensor:
    """StyleGAN2's modulated (and demodulated) convolution, as one grouped convolution.

    Each sample's weights are `weight * styles` (and, with `demodulate`, divided by their L2 norm per
    output channel); the batch is folded into the channel dimension so that one grouped
    convolution serves every sample.
    """
    n = x.shape[0]
    out_ch, in_ch, kh, kw = weight.shape
    assert_shape(x, [n, in_ch, None, None], "x")
    assert_shape(styles, [n, in_ch], "styles")
    w = weight.unsqueeze(0) * styles.reshape(n, 1, in_ch, 1, 1)  # [N, O, I, k, k]
    if demodulate:
        w = w * (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt().reshape(n, out_ch, 1, 1, 1)
    x = x.reshape(1, n * in_ch, *x.shape[2:])
    w = w.to(x.dtype)
    if up == 1:
        x = F.conv2d(x, w.reshape(n * out_ch, in_ch, kh, kw), padding=padding, groups=n)
    else:
        if resample_filter is None:
            raise ValueError("modulated_conv2d with up > 1 needs a resample_filter")
        # Transposed convolution of stride `up` (weights laid out [in, out] per group), then the
        # low-pass filter with the padding that centres the result on the upsampled grid.
        wt = w.transpose(1, 2).reshape(n * in_ch, out_ch, kh, kw)
        fh, fw = resample_filter.shape
        px0 = padding + (fw + up - 1) // 2 - (kw - 1)
        px1 = padding + (fw - up) // 2 - (kw - up)
        py0 = padding + (fh + up - 1) // 2 - (kh - 1)
        py1 = padding + (fh - up) // 2 - (kh - up)
        pxt = max(min(-px0, -px1), 0)
        pyt = max(min(-py0, -py1), 0)
        x = F.conv_transpose2d(x, wt, stride=up, padding=[pyt, pxt], groups=n)
        x = upfirdn2d(x, resample_filter, pad=[px0 + pxt, px1 + pxt, py0 + pyt, py1 + pyt], gain=up * up)
    x = x.reshape(n, out_ch, *x.shape[2:])
    if noise is not None:
        x = x + noise.to(x.dtype)
    return x
