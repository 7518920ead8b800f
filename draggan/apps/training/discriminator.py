"""The StyleGAN2 residual discriminator (Karras et al. 2020, configuration E/F).

From-RGB at full resolution, residual blocks that halve the resolution (two 3x3 convolutions with a
low-pass filter before the strided one, a 1x1 strided skip), then an epilogue at 4x4 with the
minibatch standard-deviation feature, a convolution and two dense layers. All layers use the
equalised learning rate of the paper.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from draggan.networks import FullyConnectedLayer
from draggan.ops import LRELU_GAIN, assert_shape, bias_act, make_resample_filter, upfirdn2d


class Conv2dLayer(torch.nn.Module):
    """A convolution with equalised learning rate, optionally halving the resolution (blur, then stride 2)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *,
                 bias: bool = True,  # learn an additive bias
                 activation: str = "lrelu",  # 'linear' or 'lrelu'
                 down: bool = False):  # halve the resolution
        super().__init__()
        self.activation, self.down, self.kernel_size = activation, down, kernel_size
        self.weight = torch.nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.bias = torch.nn.Parameter(torch.zeros([out_channels])) if bias else None
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size ** 2)
        self.register_buffer("resample_filter", make_resample_filter())

    def forward(self, x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        w = self.weight * self.weight_gain
        if self.down:  # low-pass, then a strided convolution: output = input / 2
            p = (self.kernel_size - 1) // 2 + 1
            x = upfirdn2d(x, self.resample_filter, pad=(p, p, p, p))
            x = F.conv2d(x, w, stride=2)
        else:
            x = F.conv2d(x, w, padding=self.kernel_size // 2)
        act_gain = (LRELU_GAIN if self.activation == "lrelu" else 1.0) * gain
        return bias_act(x, None if self.bias is None else self.bias.to(x.dtype), act=self.activation, gain=act_gain)


class DiscriminatorBlock(torch.nn.Module):
    """Two 3x3 convolutions (the second halves the resolution) plus a 1x1 skip, summed with gain sqrt(1/2)."""

    def __init__(self, in_channels: int, out_channels: int, *, from_rgb: int = 0):
        super().__init__()
        self.fromrgb = Conv2dLayer(from_rgb, in_channels, 1) if from_rgb else None
        self.conv0 = Conv2dLayer(in_channels, in_channels, 3)
        self.conv1 = Conv2dLayer(in_channels, out_channels, 3, down=True)
        self.skip = Conv2dLayer(in_channels, out_channels, 1, bias=False, activation="linear", down=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fromrgb is not None:
            x = self.fromrgb(x)
        y = self.skip(x, gain=math.sqrt(0.5))
        x = self.conv1(self.conv0(x), gain=math.sqrt(0.5))
        return x + y


class MinibatchStd(torch.nn.Module):
    """Appends the standard deviation of the features across groups of the batch as extra channels."""

    def __init__(self, group_size: int = 4, num_channels: int = 1):
        super().__init__()
        self.group_size, self.num_channels = group_size, num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = min(self.group_size, n)
        if n % g:
            g = math.gcd(n, g)
        f = self.num_channels
        y = x.reshape(g, -1, f, c // f, h, w)
        y = (y - y.mean(dim=0)).square().mean(dim=0).add(1e-8).sqrt()  # std over each group
        y = y.mean(dim=[2, 3, 4]).reshape(-1, f, 1, 1).repeat(g, 1, h, w)
        return torch.cat([x, y], dim=1)


class Discriminator(torch.nn.Module):
    """image [B, C, R, R] in [-1, 1] -> realness logit [B, 1]."""

    def __init__(self, img_resolution: int, img_channels: int = 3, *,
                 channel_base: int = 32768,  # channels at resolution r are min(channel_base // r, channel_max)
                 channel_max: int = 512,  # largest number of channels
                 mbstd_group_size: int = 4):  # group size of the minibatch standard deviation
        super().__init__()
        if img_resolution < 8 or img_resolution & (img_resolution - 1):
            raise ValueError(f"img_resolution must be a power of two >= 8, got {img_resolution}")
        self.init_kwargs = dict(img_resolution=img_resolution, img_channels=img_channels, channel_base=channel_base,
                                channel_max=channel_max, mbstd_group_size=mbstd_group_size)
        self.img_resolution, self.img_channels = img_resolution, img_channels
        self.block_resolutions = [2 ** i for i in range(int(math.log2(img_resolution)), 2, -1)]
        ch = {r: min(channel_base // r, channel_max) for r in self.block_resolutions + [4]}
        for r in self.block_resolutions:
            setattr(self, f"b{r}", DiscriminatorBlock(ch[r], ch[r // 2], from_rgb=img_channels if r == img_resolution else 0))
        self.mbstd = MinibatchStd(mbstd_group_size)
        self.conv = Conv2dLayer(ch[4] + 1, ch[4], 3)
        self.fc = FullyConnectedLayer(ch[4] * 16, ch[4], activation="lrelu")
        self.out = FullyConnectedLayer(ch[4], 1)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        assert_shape(img, [None, self.img_channels, self.img_resolution, self.img_resolution], "img")
        x = img
        for r in self.block_resolutions:
            x = getattr(self, f"b{r}")(x)
        x = self.conv(self.mbstd(x))
        return self.out(self.fc(x.flatten(1)))
