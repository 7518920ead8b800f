"""Dense optical flow between two images, from one of several estimators.

`make_flow(name)` gives an estimator; calling it on two images ([3, H, W] tensors in [-1, 1], as the
generator makes them) returns the flow from the first to the second as a float32 array [H, W, 2] of
(dx, dy) pixels: the content at (x, y) in image 1 is at (x + dx, y + dy) in image 2.

- `dis`: OpenCV's dense inverse search (Kroeger et al. 2016), offline, no weights.
- `farneback`: OpenCV's polynomial-expansion flow (Farneback 2003), offline, no weights.
- `raft_small`, `raft_large`: torchvision's RAFT (Teed and Deng 2020) with its released weights
  (C_T_V2 and C_T_SKHT_V2), found through `draggan.weights`; unavailable (never random) without them.
  Small images are upsampled so that RAFT's 1/8 feature grid is at least 32 cells wide.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from draggan.weights import WeightsUnavailable, find_weights

FLOW_ESTIMATORS = ("dis", "farneback", "raft_small", "raft_large")


def to_uint8_gray(img: torch.Tensor) -> np.ndarray:
    """[3, H, W] in [-1, 1] -> [H, W] uint8 luminance (OpenCV's input)."""
    rgb = ((img.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).permute(1, 2, 0).numpy()
    gray = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return np.ascontiguousarray(gray.round().clip(0, 255).astype(np.uint8))


class FlowEstimator:
    name = "flow"

    def availability(self) -> str | None:
        """None when the estimator can run, else why not."""
        return None

    def __call__(self, img1: torch.Tensor, img2: torch.Tensor) -> np.ndarray:
        raise NotImplementedError


class DISFlow(FlowEstimator):
    name = "dis"

    def __init__(self, preset: str = "medium", patch_size: int | None = None, patch_stride: int | None = None):
        import cv2

        presets = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
                   "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}
        if preset not in presets:
            raise ValueError(f"DIS preset must be one of {sorted(presets)}, got {preset!r}")
        self.dis = cv2.DISOpticalFlow_create(presets[preset])
        if patch_size is not None:
            self.dis.setPatchSize(int(patch_size))
        if patch_stride is not None:
            self.dis.setPatchStride(int(patch_stride))

    def __call__(self, img1, img2):
        return self.dis.calc(to_uint8_gray(img1), to_uint8_gray(img2), None).astype(np.float32)


class FarnebackFlow(FlowEstimator):
    name = "farneback"

    def __init__(self, pyr_scale: float = 0.5, levels: int = 3, winsize: int = 9, iterations: int = 5,
                 poly_n: int = 5, poly_sigma: float = 1.1):
        self.args = (pyr_scale, levels, winsize, iterations, poly_n, poly_sigma, 0)

    def __call__(self, img1, img2):
        import cv2

        return cv2.calcOpticalFlowFarneback(to_uint8_gray(img1), to_uint8_gray(img2), None, *self.args).astype(np.float32)


class RAFTFlow(FlowEstimator):
    """torchvision's RAFT with released weights; `weights` = a path, else torch hub's cache."""

    def __init__(self, size: str = "small", weights: str | os.PathLike | None = None, download: bool = False,
                 device: str | torch.device = "cpu", iterations: int = 12, min_grid: int = 32):
        from torchvision.models import optical_flow as of

        if size not in ("small", "large"):
            raise ValueError(f"RAFT size must be 'small' or 'large', got {size!r}")
        self.name = f"raft_{size}"
        enum = of.Raft_Small_Weights.C_T_V2 if size == "small" else of.Raft_Large_Weights.C_T_SKHT_V2
        self.size, self.device, self.iterations, self.min_grid = size, torch.device(device), iterations, min_grid
        self._model = None
        self._reason = None
        try:
            self.path = find_weights(enum.url.rsplit("/", 1)[-1], enum.url, path=weights, download=download,
                                     what=f"RAFT {size}")
        except WeightsUnavailable as e:
            self.path, self._reason = None, str(e)

    def availability(self):
        return self._reason

    def model(self) -> torch.nn.Module:
        if self._reason is not None:
            raise WeightsUnavailable(self._reason)
        if self._model is None:
            from torchvision.models import optical_flow as of

            net = of.raft_small(weights=None) if self.size == "small" else of.raft_large(weights=None)
            net.load_state_dict(torch.load(self.path, map_location="cpu", weights_only=True))
            self._model = net.to(self.device).eval().requires_grad_(False)
        return self._model

    @torch.no_grad()
    def __call__(self, img1, img2):
        net = self.model()
        H, W = img1.shape[-2:]
        scale = max(1, -(-self.min_grid * 8 // min(H, W)))  # upsample so the 1/8 grid has >= min_grid cells
        h8, w8 = -(-H * scale // 8) * 8, -(-W * scale // 8) * 8
        pair = torch.stack([img1, img2]).float().to(self.device).clamp(-1, 1)
        pair = torch.nn.functional.interpolate(pair, size=(h8, w8), mode="bilinear", align_corners=False)
        flow = net(pair[:1], pair[1:], num_flow_updates=self.iterations)[-1][0]  # [2, h8, w8]
        flow = torch.nn.functional.interpolate(flow[None], size=(H, W), mode="bilinear", align_corners=False)[0]
        flow[0] *= W / w8
        flow[1] *= H / h8
        return flow.permute(1, 2, 0).cpu().numpy().astype(np.float32)


def make_flow(name: str, *, weights: str | os.PathLike | None = None, download: bool = False,
              device: str | torch.device = "cpu") -> FlowEstimator:
    if name == "dis":
        return DISFlow()
    if name == "farneback":
        return FarnebackFlow()
    if name in ("raft_small", "raft_large"):
        return RAFTFlow(name.split("_")[1], weights=weights, download=download, device=device)
    raise ValueError(f"unknown flow estimator {name!r} (expected one of {', '.join(FLOW_ESTIMATORS)})")


def sample_flow(flow: np.ndarray, points_xy: np.ndarray) -> np.ndarray:
    """Bilinear samples [N, 2] of `flow` [H, W, 2] at (x, y) points (clamped to the image)."""
    H, W = flow.shape[:2]
    x = np.clip(points_xy[:, 0], 0, W - 1)
    y = np.clip(points_xy[:, 1], 0, H - 1)
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    x1, y1 = np.minimum(x0 + 1, W - 1), np.minimum(y0 + 1, H - 1)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    top = flow[y0, x0] * (1 - fx) + flow[y0, x1] * fx
    bottom = flow[y1, x0] * (1 - fx) + flow[y1, x1] * fx
    return top * (1 - fy) + bottom * fy
