"""The StyleGAN2 generator, equal to the official StyleGAN2-ADA PyTorch one.

Karras et al., "Analyzing and Improving the Image Quality of StyleGAN", CVPR 2020.

Module, parameter and buffer names are those of the official generator, so an official state dict
loads with `strict=True`; `Generator(**init_kwargs)` takes the keyword arguments that official
network pickles store (nested `mapping_kwargs`/`synthesis_kwargs` as in StyleGAN2-ADA, or flat as
in the StyleGAN3 repository). Non-square generators (StyleGAN-Human, height = 2 x width) are
built with `square=False`.

Contracts: latents are W+ shaped `[B, num_ws, w_dim]`; images are `[B, C, H, W]`, about [-1, 1].
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch

from draggan.ops import (
    LRELU_GAIN,
    assert_shape,
    bias_act,
    make_resample_filter,
    modulated_conv2d,
    normalize_2nd_moment,
    upsample2d,
)

NOISE_MODES = ("const", "random", "none")

# Keyword arguments of official pickles that only matter for the memory layout or for other
# implementations; accepted and ignored (the results do not depend on them).
IGNORED_KWARGS = frozenset({"fp16_channels_last", "channels_last", "fused_modconv_default", "padding", "resize"})


def _gain(activation: str) -> float:
    return LRELU_GAIN if activation == "lrelu" else 1.0


class FullyConnectedLayer(torch.nn.Module):
    """A dense layer with equalised learning rate."""

    def __init__(self, in_features: int, out_features: int, *,
                 bias: bool = True,  # learn an additive bias
                 activation: str = "linear",  # 'linear' or 'lrelu'
                 lr_multiplier: float = 1.0,  # learning-rate multiplier of the equalised parameters
                 bias_init: float = 0.0):  # initial value of the bias
        super().__init__()
        self.in_features, self.out_features, self.activation = in_features, out_features, activation
        self.weight = torch.nn.Parameter(torch.randn([out_features, in_features]) / lr_multiplier)
        self.bias = torch.nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.to(x.dtype) * self.weight_gain
        b = None if self.bias is None else self.bias.to(x.dtype) * self.bias_gain
        if self.activation == "linear" and b is not None:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return bias_act(x.matmul(w.t()), b, act=self.activation, gain=_gain(self.activation))


class MappingNetwork(torch.nn.Module):
    """z (and the class label c) -> w, broadcast to `num_ws` rows, with truncation."""

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, num_ws: int, *,
                 num_layers: int = 8,  # number of dense layers
                 embed_features: int | None = None,  # label embedding size, None = w_dim
                 layer_features: int | None = None,  # width of the hidden layers, None = w_dim
                 activation: str = "lrelu",  # activation of the dense layers
                 lr_multiplier: float = 0.01,  # learning-rate multiplier of the dense layers
                 w_avg_beta: float | None = 0.998):  # decay of the running mean of w (training only)
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim, self.num_ws, self.num_layers = z_dim, c_dim, w_dim, num_ws, num_layers
        self.w_avg_beta = w_avg_beta
        embed_features = 0 if c_dim == 0 else (w_dim if embed_features is None else embed_features)
        layer_features = w_dim if layer_features is None else layer_features
        features = [z_dim + embed_features] + [layer_features] * (num_layers - 1) + [w_dim]
        if c_dim > 0:
            self.embed = FullyConnectedLayer(c_dim, embed_features)
        for i in range(num_layers):
            setattr(self, f"fc{i}", FullyConnectedLayer(features[i], features[i + 1], activation=activation,
                                                        lr_multiplier=lr_multiplier))
        self.register_buffer("w_avg", torch.zeros([w_dim]))

    def forward(self, z: torch.Tensor | None, c: torch.Tensor | None, truncation_psi: float = 1,
                truncation_cutoff: int | None = None, update_emas: bool = False) -> torch.Tensor:
        x = None
        if self.z_dim > 0:
            if z is None:
                raise ValueError(f"this generator needs z of shape [B, {self.z_dim}]")
            assert_shape(z, [None, self.z_dim], "z")
            x = normalize_2nd_moment(z.to(torch.float32))
        if self.c_dim > 0:
            if c is None:
                raise ValueError(f"this generator is conditional: it needs a class label c of shape [B, {self.c_dim}]")
            assert_shape(c, [None, self.c_dim], "c")
            y = normalize_2nd_moment(self.embed(c.to(torch.float32)))
            x = y if x is None else torch.cat([x, y], dim=1)
        for i in range(self.num_layers):
            x = getattr(self, f"fc{i}")(x)
        if update_emas and self.w_avg_beta is not None:
            self.w_avg.copy_(x.detach().to(self.w_avg.dtype).mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        x = x.unsqueeze(1).repeat([1, self.num_ws, 1])
        if truncation_psi != 1:
            cutoff = self.num_ws if truncation_cutoff is None else truncation_cutoff
            x = torch.cat([self.w_avg.lerp(x[:, :cutoff], truncation_psi), x[:, cutoff:]], dim=1)
        return x


class SynthesisLayer(torch.nn.Module):
    """Modulated 3x3 convolution (optionally upsampling), noise, bias, leaky ReLU, clamp."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, *,
                 width: int | None = None,  # width of the output, None = resolution (square)
                 kernel_size: int = 3,  # convolution kernel size
                 up: int = 1,  # 2 = upsample before the convolution
                 use_noise: bool = True,  # add per-pixel noise
                 activation: str = "lrelu",  # activation function
                 resample_filter: Sequence[float] = (1, 3, 3, 1),  # low-pass filter for upsampling
                 conv_clamp: float | None = None):  # clamp the output to +-conv_clamp
        super().__init__()
        self.in_channels, self.out_channels, self.resolution, self.up = in_channels, out_channels, resolution, up
        self.width = resolution if width is None else width
        self.use_noise, self.activation, self.conv_clamp = use_noise, activation, conv_clamp
        self.padding = kernel_size // 2
        self.register_buffer("resample_filter", make_resample_filter(resample_filter))
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = torch.nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        if use_noise:
            self.register_buffer("noise_const", torch.randn([resolution, self.width]))
            self.noise_strength = torch.nn.Parameter(torch.zeros([]))
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "const", gain: float = 1) -> torch.Tensor:
        noise = None
        if self.use_noise and noise_mode == "random":
            noise = torch.randn([x.shape[0], 1, self.resolution, self.width], device=x.device) * self.noise_strength
        elif self.use_noise and noise_mode == "const":
            noise = self.noise_const * self.noise_strength
        styles = self.affine(w)
        x = modulated_conv2d(x, self.weight, styles, noise=noise, up=self.up, padding=self.padding,
                             resample_filter=self.resample_filter, fused=_fused_modconv(self, x, styles))
        clamp = None if self.conv_clamp is None else self.conv_clamp * gain
        return bias_act(x, self.bias.to(x.dtype), act=self.activation, gain=_gain(self.activation) * gain, clamp=clamp)


class ToRGBLayer(torch.nn.Module):
    """Modulated 1x1 convolution to the image channels (no demodulation)."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, *,
                 kernel_size: int = 1,  # convolution kernel size
                 conv_clamp: float | None = None):  # clamp the output to +-conv_clamp
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = torch.nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size ** 2)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain
        x = modulated_conv2d(x, self.weight, styles, demodulate=False, fused=_fused_modconv(self, x, styles))
        return bias_act(x, self.bias.to(x.dtype), clamp=self.conv_clamp)


class SkipLayer(torch.nn.Module):
    """The 1x1 upsampling shortcut of the 'resnet' architecture (official name: `skip`)."""

    def __init__(self, in_channels: int, out_channels: int, resample_filter: Sequence[float]):
        super().__init__()
        self.register_buffer("resample_filter", make_resample_filter(resample_filter))
        self.weight = torch.nn.Parameter(torch.randn([out_channels, in_channels, 1, 1]))
        self.weight_gain = 1 / math.sqrt(in_channels)

    def forward(self, x: torch.Tensor, gain: float) -> torch.Tensor:
        x = torch.nn.functional.conv2d(x, (self.weight * self.weight_gain).to(x.dtype))
        return upsample2d(x, self.resample_filter) * gain


class SynthesisBlock(torch.nn.Module):
    """One resolution of the synthesis network: (const or upsampling conv0), conv1, ToRGB."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, img_channels: int,
                 is_last: bool, *,
                 square: bool = True,  # False = width is half the height (StyleGAN-Human)
                 architecture: str = "skip",  # 'orig', 'skip' or 'resnet'
                 resample_filter: Sequence[float] = (1, 3, 3, 1),  # low-pass filter for resampling
                 conv_clamp: float | None = 256,  # clamp convolution outputs to +-conv_clamp
                 use_fp16: bool = False,  # compute this block in float16 on CUDA (unless force_fp32)
                 **layer_kwargs: Any):  # kernel_size, use_noise, activation of the layers
        if architecture not in ("orig", "skip", "resnet"):
            raise ValueError(f"unknown architecture {architecture!r} (expected 'orig', 'skip' or 'resnet')")
        super().__init__()
        self.in_channels, self.resolution, self.img_channels = in_channels, resolution, img_channels
        self.width = resolution if square else resolution // 2
        self.is_last, self.architecture, self.use_fp16 = is_last, architecture, use_fp16
        self.register_buffer("resample_filter", make_resample_filter(resample_filter))
        self.num_conv = self.num_torgb = 0
        if in_channels == 0:
            self.const = torch.nn.Parameter(torch.randn([out_channels, resolution, self.width]))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, resolution, width=self.width, up=2,
                                        resample_filter=resample_filter, conv_clamp=conv_clamp, **layer_kwargs)
            self.num_conv += 1
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution, width=self.width,
                                    resample_filter=resample_filter, conv_clamp=conv_clamp, **layer_kwargs)
        self.num_conv += 1
        if is_last or architecture == "skip":
            self.torgb = ToRGBLayer(out_channels, img_channels, w_dim, conv_clamp=conv_clamp)
            self.num_torgb += 1
        if in_channels != 0 and architecture == "resnet":
            self.skip = SkipLayer(in_channels, out_channels, resample_filter)

    def dtype(self, device: torch.device, force_fp32: bool = False) -> torch.dtype:
        """The block's compute dtype: float16 where the generator says so, on CUDA only (as the official code)."""
        return torch.float16 if self.use_fp16 and not force_fp32 and device.type == "cuda" else torch.float32

    def forward_features(self, x: torch.Tensor | None, ws: Sequence[torch.Tensor], noise_mode: str,
                         force_fp32: bool = False) -> torch.Tensor:
        """The block's feature map `x` from the previous one (None for the first block), in the block's dtype."""
        dtype = self.dtype(ws[0].device, force_fp32)
        if _autocast_enabled(ws[0].device):  # autocast decides the dtypes (training in bf16)
            dtype = None
        if self.in_channels == 0:
            return self.conv1(self.const.to(dtype).unsqueeze(0).repeat([ws[0].shape[0], 1, 1, 1]), ws[0], noise_mode)
        assert_shape(x, [None, self.in_channels, self.resolution // 2, self.width // 2], f"input of block {self.resolution}")
        x = x.to(dtype)
        if self.architecture == "resnet":
            y = self.skip(x, gain=math.sqrt(0.5))
            x = self.conv0(x, ws[0], noise_mode)
            return y + self.conv1(x, ws[1], noise_mode, gain=math.sqrt(0.5))
        return self.conv1(self.conv0(x, ws[0], noise_mode), ws[1], noise_mode)

    def forward_image(self, x: torch.Tensor, img: torch.Tensor | None, ws: Sequence[torch.Tensor]) -> torch.Tensor | None:
        """The running RGB image after this block, from its features `x` and the previous image."""
        if img is not None:
            img = upsample2d(img, self.resample_filter)
        if self.num_torgb:
            y = self.torgb(x, ws[self.num_conv]).to(torch.float32)
            img = y if img is None else img + y
        return img


class SynthesisNetwork(torch.nn.Module):
    """W+ latents -> image, block by block from 4x4 up to `img_resolution`."""

    def __init__(self, w_dim: int, img_resolution: int, img_channels: int, *,
                 channel_base: int = 32768,  # channels of block r are min(channel_base // r, channel_max)
                 channel_max: int = 512,  # largest number of channels of a block
                 square: bool = True,  # False = width is half the height (StyleGAN-Human)
                 num_fp16_res: int = 0,  # float16 on CUDA for this many of the highest resolutions
                 **block_kwargs: Any):  # architecture, resample_filter, conv_clamp, layer settings
        if img_resolution < 4 or img_resolution & (img_resolution - 1):
            raise ValueError(f"img_resolution must be a power of two >= 4, got {img_resolution}")
        super().__init__()
        for key in IGNORED_KWARGS:
            block_kwargs.pop(key, None)
        self.w_dim, self.img_resolution, self.img_channels, self.square = w_dim, img_resolution, img_channels, square
        self.img_width = img_resolution if square else img_resolution // 2
        self.block_resolutions = [2 ** i for i in range(2, int(math.log2(img_resolution)) + 1)]
        channels = {r: min(channel_base // r, channel_max) for r in self.block_resolutions}
        fp16_resolution = max(2 ** (int(math.log2(img_resolution)) + 1 - num_fp16_res), 8)
        self.num_ws = 0
        self.block_w_offsets: list[int] = []
        for r in self.block_resolutions:
            is_last = r == img_resolution
            block = SynthesisBlock(channels[r // 2] if r > 4 else 0, channels[r], w_dim, r, img_channels, is_last,
                                   square=square, use_fp16=r >= fp16_resolution, **block_kwargs)
            self.block_w_offsets.append(self.num_ws)
            self.num_ws += block.num_conv + (block.num_torgb if is_last else 0)
            setattr(self, f"b{r}", block)

    @property
    def blocks(self) -> list[SynthesisBlock]:
        return [getattr(self, f"b{r}") for r in self.block_resolutions]

    def feature_shape(self, block: int) -> tuple[int, int, int]:
        """(channels, height, width) of the features of synthesis block `block` (0 = 4x4)."""
        b = self.blocks[block]
        return b.conv1.out_channels, b.resolution, b.width

    def _check_ws(self, ws: torch.Tensor, noise_mode: str) -> None:
        assert_shape(ws, [None, self.num_ws, self.w_dim], "ws")
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")

    def _iter_blocks(self, ws: torch.Tensor, noise_mode: str, last: int, force_fp32: bool = False
                     ) -> Iterator[tuple[SynthesisBlock, torch.Tensor, list[torch.Tensor]]]:
        ws = ws.to(torch.float32)
        x = None
        for i, block in enumerate(self.blocks[: last + 1]):
            o = self.block_w_offsets[i]
            block_ws = ws[:, o: o + block.num_conv + block.num_torgb].unbind(dim=1)
            x = block.forward_features(x, block_ws, noise_mode, force_fp32)
            yield block, x, block_ws

    def forward(self, ws: torch.Tensor, noise_mode: str = "const", return_features: bool = False,
                dtype: torch.dtype | None = None, force_fp32: bool = False):
        """The image `[B, C, H, W]` (float32); with `return_features`, `(img, feats)` where `feats[k]` is
        the output of block k (k = 0 is the 4x4 block), in that block's dtype.

        Precision: on CUDA the blocks of the `num_fp16_res` highest resolutions compute in float16,
        as in the official generator, unless `force_fp32`. `dtype` (torch.float16 / bfloat16)
        instead runs every convolution under autocast."""
        self._check_ws(ws, noise_mode)
        img, feats = None, []
        with _autocast(ws.device, dtype):
            for block, x, block_ws in self._iter_blocks(ws, noise_mode, len(self.blocks) - 1, force_fp32):
                feats.append(x)
                img = block.forward_image(x, img, block_ws)
        img = img.to(torch.float32)
        return (img, feats) if return_features else img

    def features(self, ws: torch.Tensor, *, up_to: int, noise_mode: str = "const",
                 dtype: torch.dtype | None = None, force_fp32: bool = False) -> list[torch.Tensor]:
        """Features of blocks 0..up_to, computing no block above `up_to` and no RGB output."""
        self._check_ws(ws, noise_mode)
        if not 0 <= up_to < len(self.blocks):
            raise ValueError(f"up_to must be in [0, {len(self.blocks) - 1}], got {up_to}")
        with _autocast(ws.device, dtype):
            return [x for _, x, _ in self._iter_blocks(ws, noise_mode, up_to, force_fp32)]


def _fused_modconv(layer: torch.nn.Module, x: torch.Tensor, styles: torch.Tensor) -> bool:
    """Whether to modulate the weights (one grouped convolution) or the activations (around the
    shared weight). The official rule: fused at inference in float32 or for a single sample, not in
    training. And one more case, not fused: gradients that flow to the styles but not to the weight
    (drag editing, projection), where the fused form would compute a weight gradient of the
    per-sample weights, a second convolution as costly as the forward one, only to reduce it to
    the styles; the unfused form needs only the input gradient. The two forms are equal up to
    float rounding."""
    if layer.training:
        return False
    if torch.is_grad_enabled() and styles.requires_grad and not layer.weight.requires_grad:
        return False
    return x.dtype == torch.float32 or x.shape[0] == 1


def _autocast_enabled(device: torch.device) -> bool:
    """Whether autocast is on for `device` (devices without autocast, such as `meta`, never are)."""
    return device.type in ("cpu", "cuda", "mps", "xpu") and torch.is_autocast_enabled(device.type)


def _autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None or dtype == torch.float32:
        return contextlib.nullcontext()
    if device.type != "cuda" and dtype == torch.float16:
        raise ValueError("float16 synthesis is supported on CUDA only; use float32 or bfloat16")
    return torch.autocast(device_type=device.type, dtype=dtype)


class Generator(torch.nn.Module):
    """StyleGAN2 generator: `mapping(z, c) -> ws`, `synthesis(ws) -> img`.

    Accepts the init_kwargs of official pickles: `Generator(z_dim, c_dim, w_dim, img_resolution,
    img_channels, mapping_kwargs={...}, synthesis_kwargs={...})` (StyleGAN2-ADA) or the same with
    synthesis settings flat (StyleGAN3 repository).
    """

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, img_resolution: int, img_channels: int = 3, *,
                 mapping_kwargs: Mapping[str, Any] | None = None,  # settings of the mapping network
                 synthesis_kwargs: Mapping[str, Any] | None = None,  # settings of the synthesis network
                 square: bool = True,  # False = width is half the height (StyleGAN-Human)
                 **flat_synthesis_kwargs: Any):  # synthesis settings given flat (StyleGAN3 repository)
        super().__init__()
        self.init_kwargs = copy.deepcopy(dict(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, img_resolution=img_resolution,
                                              img_channels=img_channels, mapping_kwargs=dict(mapping_kwargs or {}),
                                              synthesis_kwargs={**(synthesis_kwargs or {}), **flat_synthesis_kwargs},
                                              square=square))
        syn_kwargs = dict(self.init_kwargs["synthesis_kwargs"])
        self.z_dim, self.c_dim, self.w_dim, self.img_resolution, self.img_channels = (
            z_dim, c_dim, w_dim, img_resolution, img_channels)
        self.synthesis = SynthesisNetwork(w_dim, img_resolution, img_channels, square=square, **syn_kwargs)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim, c_dim, w_dim, self.num_ws, **self.init_kwargs["mapping_kwargs"])

    @property
    def img_height(self) -> int:
        return self.img_resolution

    @property
    def img_width(self) -> int:
        return self.synthesis.img_width

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None, truncation_psi: float = 1,
                truncation_cutoff: int | None = None, noise_mode: str = "const") -> torch.Tensor:
        return self.synthesis(self.mapping(z, c, truncation_psi, truncation_cutoff), noise_mode=noise_mode)
