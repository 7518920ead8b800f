"""Landmark detector for the toy-faces domain: a CNN guess refined by analysis by synthesis.

Two stages, both documented in the model card:
1. `ParamNet`, a small CNN trained on renders (`train_detector`), predicts the renderer's parameters
   of an image (geometry and colours), which give a first guess of every landmark.
2. The guess is refined by fitting the differentiable renderer to the image: Adam on the
   parameters, minimising the squared difference of Gaussian-blurred images, coarse to fine.

The landmarks are those of the fitted parameters. The parameters do not depend on the image size,
so one network serves every resolution: an image larger than the network's is area-downsampled for
the first guess, and the fit runs coarse to fine (level i renders at the network's resolution times
2^i, at most the image's), so that only the last, unblurred level pays for the full size.

The confidence of each landmark is the normalised cross-correlation between the image and the fitted
render in a `window` x `window` neighbourhood of the landmark (clamped to [0, 1]; `window` is in
pixels of a 64-px image and grows with it): does the image have the structure the fitted face has
there (the edge of the chin, the dark iris in the white eye), whatever its exact colours and
sharpness? On renders it is 1; a landmark whose neighbourhood the fitted face does not explain (a
missing eye, a smeared mouth, noise) gets a low confidence. Every landmark lies on an edge of the
fitted face, so the render's side of the correlation is never flat.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from draggan.apps.toyfaces.renderer import LANDMARKS, PARAMS, landmarks, render, sample_params

_LOW = torch.tensor([p.low for p in PARAMS])
_HIGH = torch.tensor([p.high for p in PARAMS])


def normalise_params(params: torch.Tensor) -> torch.Tensor:
    """Renderer parameters -> [0, 1] within their ranges."""
    return (params - _LOW.to(params)) / (_HIGH - _LOW).to(params)


def denormalise_params(unit: torch.Tensor) -> torch.Tensor:
    """[0, 1] -> renderer parameters."""
    return _LOW.to(unit) + unit * (_HIGH - _LOW).to(unit)


class ParamNet(torch.nn.Module):
    """image [B, 3, R, R] in [-1, 1] -> renderer parameters normalised to [0, 1], [B, len(PARAMS)]."""

    def __init__(self, resolution: int = 64, width: int = 32):
        super().__init__()
        self.resolution = resolution
        layers, c_in, c, r = [], 3, width, resolution
        while r > 4:
            layers += [torch.nn.Conv2d(c_in, c, 3, padding=1), torch.nn.GELU(),
                       torch.nn.Conv2d(c, c, 3, padding=1, stride=2), torch.nn.GELU()]
            c_in, c, r = c, min(c * 2, 256), r // 2
        self.features = torch.nn.Sequential(*layers)
        self.head = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(c_in * 16, 256), torch.nn.GELU(),
                                        torch.nn.Linear(256, len(PARAMS)))

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.head(self.features(img)))


@dataclass
class Detection:
    landmarks: torch.Tensor  # [B, K, 2] (x, y) pixels, K = len(LANDMARKS)
    confidence: torch.Tensor  # [B, K] in [0, 1]
    detected: torch.Tensor  # [B, K] bool: confidence >= the detector's threshold
    params: torch.Tensor  # [B, len(PARAMS)] the fitted renderer parameters
    residual: torch.Tensor  # [B] mean absolute difference between the image and the fitted render


def _local_correlation(a: torch.Tensor, b: torch.Tensor, window: int) -> torch.Tensor:
    """Normalised cross-correlation of two image batches in a sliding window, channels pooled: [B, 1, H, W]."""
    def pool(x):  # window mean per channel
        return F.avg_pool2d(x, window, stride=1, padding=window // 2, count_include_pad=False)

    ma, mb = pool(a), pool(b)
    cov = (pool(a * b) - ma * mb).mean(dim=1, keepdim=True)
    va = (pool(a * a) - ma * ma).mean(dim=1, keepdim=True)
    vb = (pool(b * b) - mb * mb).mean(dim=1, keepdim=True)
    return cov / (va.clamp_min(0) * vb.clamp_min(0) + 1e-6).sqrt()


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    if sigma <= 0:
        return x
    radius = max(1, int(math.ceil(2.5 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    x = F.conv2d(F.pad(x, [radius, radius, 0, 0], mode="replicate"), k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(F.pad(x, [0, 0, radius, radius], mode="replicate"), k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def _downsample(images: torch.Tensor, resolution: int) -> torch.Tensor:
    """Area (box) downsampling by an integer factor: what a render at `resolution` approximates."""
    factor = images.shape[-1] // resolution
    return images if factor == 1 else F.avg_pool2d(images, factor)


class LandmarkDetector:
    """`detector(images) -> Detection` for images of the toy-faces domain (renders or generated)."""

    def __init__(self, net: ParamNet, *,
                 resolution: int | None = None,  # size of the images to detect in, None = the network's
                 refine_steps: tuple[int, ...] = (40, 40, 40),  # Adam steps at each blur level
                 blur_sigmas: tuple[float, ...] = (2.0, 1.0, 0.0),  # Gaussian blur of each level, pixels of its size
                 lr: float = 0.01,  # Adam step on the normalised parameters
                 window: int = 7,  # side (pixels of a 64-px image) of the window giving a landmark's confidence
                 threshold: float = 0.5,  # confidence needed to count a landmark as detected
                 device: str | torch.device = "cpu"):  # where the network and the fitting run
        self.device = torch.device(device)
        self.net = net.eval().requires_grad_(False).to(self.device)
        self.resolution = resolution or net.resolution
        if self.resolution % net.resolution:
            raise ValueError(f"resolution {self.resolution} is not a multiple of the network's {net.resolution}")
        self.refine_steps, self.blur_sigmas, self.lr = refine_steps, blur_sigmas, lr
        self.window = 2 * round(window * self.resolution / 64 / 2 - 0.5) + 1  # odd, scaled with the image
        self.threshold = threshold
        self.level_resolutions = tuple(min(self.resolution, net.resolution * 2 ** i) for i in range(len(refine_steps)))

    def initial_params(self, images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.net(_downsample(images.float(), self.net.resolution))

    def fit(self, images: torch.Tensor, unit: torch.Tensor) -> torch.Tensor:
        """Refine normalised parameters `unit` so that their render matches `images`."""
        unit = unit.detach().clone().requires_grad_(True)
        opt = torch.optim.Adam([unit], lr=self.lr)
        for steps, sigma, res in zip(self.refine_steps, self.blur_sigmas, self.level_resolutions):
            target = _gaussian_blur(_downsample(images, res), sigma)
            for _ in range(steps):
                loss = (_gaussian_blur(render(denormalise_params(unit), res), sigma) - target).square()
                opt.zero_grad(set_to_none=True)
                loss.sum().backward()  # a sum: each image's parameters get their own gradient scale
                opt.step()
                with torch.no_grad():
                    unit.clamp_(-0.05, 1.05)  # slightly outside the ranges is allowed (generated faces)
        return unit.detach()

    def __call__(self, images: torch.Tensor, *, refine: bool = True, batch_size: int = 64) -> Detection:
        if images.ndim != 4 or images.shape[1:] != (3, self.resolution, self.resolution):
            raise ValueError(f"images must be [B, 3, {self.resolution}, {self.resolution}] in [-1, 1], "
                             f"got {list(images.shape)}")
        outs = [self._detect(images[i:i + batch_size].detach().float().to(self.device), refine)
                for i in range(0, len(images), batch_size)]
        return Detection(*[torch.cat([getattr(o, f) for o in outs]).cpu() for f in
                           ("landmarks", "confidence", "detected", "params", "residual")])

    def _detect(self, images: torch.Tensor, refine: bool) -> Detection:
        unit = self.initial_params(images)
        if refine:
            unit = self.fit(images, unit)
        params = denormalise_params(unit)
        with torch.no_grad():
            pts = landmarks(params, self.resolution)
            fitted = render(params, self.resolution)
            residual = (fitted - images).abs().mean(dim=[1, 2, 3])
            ncc = _local_correlation(fitted, images, self.window)
            grid = (pts + 0.5) / self.resolution * 2 - 1  # (x, y) pixel centres -> grid_sample coordinates
            at = F.grid_sample(ncc, grid[:, :, None, :], mode="bilinear", padding_mode="border",
                               align_corners=False)[:, 0, :, 0]
            inside = ((pts >= 0) & (pts <= self.resolution - 1)).all(dim=-1)
            conf = at.clamp(0, 1) * inside
        return Detection(landmarks=pts, confidence=conf, detected=conf >= self.threshold, params=params,
                         residual=residual)


@dataclass
class DetectorTrainResult:
    path: Path
    iterations: int
    wall_seconds: float
    final_loss: float


def train_detector(out_path: str | Path, *, resolution: int = 64, iterations: int = 3000, batch: int = 64,
                   lr: float = 2e-3, seed: int = 0, landmark_weight: float = 0.05,
                   device: str | torch.device = "cpu", progress: bool = True) -> DetectorTrainResult:
    """Train `ParamNet` on fresh renders (batch i drawn with seed (seed, i)); writes safetensors weights.

    The renders and the network live on `device` (a GPU renders a 256-px batch far faster than the CPU).

    The loss is the L1 error of the normalised parameters plus `landmark_weight` times the L1 error
    of the landmarks in pixels. Learning rate: cosine decay to zero.
    """
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    device = torch.device(device)
    net = ParamNet(resolution).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, iterations)
    t0 = time.perf_counter()
    loss_value = float("nan")
    bar = tqdm(range(iterations), desc="detector", disable=not progress, dynamic_ncols=True)
    for it in bar:
        params = sample_params(batch, np.random.default_rng([seed, it])).to(device)
        images = render(params, resolution)
        pred = net(images)
        loss = (pred - normalise_params(params)).abs().mean() + landmark_weight * (
            landmarks(denormalise_params(pred), resolution) - landmarks(params, resolution)).abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        loss_value = float(loss.detach())
        if it % 50 == 0:
            bar.set_postfix(loss=f"{loss_value:.4f}")
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.half().cpu().contiguous() for k, v in net.state_dict().items()}, str(out_path),  # fp16: half the size
              metadata={"resolution": str(resolution), "landmarks": ",".join(LANDMARKS), "iterations": str(iterations)})
    return DetectorTrainResult(out_path, iterations, time.perf_counter() - t0, loss_value)


def load_detector(path: str | Path | None = None, **kwargs) -> LandmarkDetector:
    """The detector shipped with the package (or the weights at `path`); `kwargs` (device=...,
    resolution=... for images larger than the network's) go to `LandmarkDetector`. Its results are on
    the CPU whatever device it runs on."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    from draggan.registry import PACKAGE_MODELS

    path = Path(path) if path is not None else PACKAGE_MODELS / "toyfaces-detector-64.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"landmark detector weights not found: {path} "
                                f"(train them with `python scripts/train_detector.py out={path}`)")
    with safe_open(str(path), framework="pt") as f:
        resolution = int(f.metadata().get("resolution", 64))
    net = ParamNet(resolution)
    net.load_state_dict({k: v.float() for k, v in load_file(str(path)).items()}, strict=True)
    return LandmarkDetector(net, **kwargs)
