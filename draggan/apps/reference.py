"""A straightforward full-resolution drag step, as the official code does it (for checks and benchmarks).

Each step synthesises the whole image with features, resizes the feature map to the image size
with `F.interpolate`, tracks on that map and samples the loss with `grid_sample`. It follows the
same `DragConfig` as `DragSession`, so both must give the same handles and latents; it is the
baseline that `scripts/bench_drag.py` measures the editor against.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from draggan.networks import Generator
from draggan.points import pixels_to_normalized, xy_to_rc
from draggan.settings import DragConfig


class FullResolutionDrag:
    """The drag step on the full-size resized feature map (no sparse sampling, whole synthesis)."""

    def __init__(self, G: Generator, ws: torch.Tensor, handles, targets, config: DragConfig | None = None):
        self.G = G
        self.cfg, _ = (config or DragConfig()).adapted_to(G)  # the editor's adaptations (block, radii, small-G rule)
        self.H, self.W = G.img_height, G.img_width
        self.ws0 = ws.detach().clone().to(torch.float32)
        self.free = torch.nn.Parameter(self.ws0[:, : self.cfg.optimize_ws].clone())
        self.opt = torch.optim.Adam([self.free], lr=self.cfg.lr)
        device = ws.device
        self.handles = xy_to_rc(torch.as_tensor(handles, dtype=torch.float64)).to(device, torch.float32)
        self.targets = xy_to_rc(torch.as_tensor(targets, dtype=torch.float64)).to(device, torch.float32)
        cells = G.synthesis.block_resolutions[self.cfg.feature_block]  # (radii given in feature cells)
        self.r1 = self.cfg.radius_px(self.cfg.r1, self.H, cells)
        self.r2 = int(self.cfg.radius_px(self.cfg.r2, self.H, cells))
        self.stop_px = self.cfg.stop_px(len(self.handles), self.H)
        self.refs = None

    @property
    def ws(self) -> torch.Tensor:
        return torch.cat([self.free, self.ws0[:, self.cfg.optimize_ws:]], dim=1)

    def step(self) -> bool:
        """One step; returns True when every handle is at its target (no update then)."""
        cfg, H, W = self.cfg, self.H, self.W
        _, feats = self.G.synthesis(self.ws, noise_mode=cfg.noise_mode, return_features=True, force_fp32=cfg.force_fp32)
        feat = F.interpolate(feats[cfg.feature_block], [H, W], mode="bilinear")
        if self.refs is None:
            rc = self.handles.round().long()
            self.refs = feat.detach()[0][:, rc[:, 0], rc[:, 1]].T
        else:
            with torch.no_grad():
                for i, (r, c) in enumerate(self.handles.round().long().tolist()):
                    top, left = max(r - self.r2, 0), max(c - self.r2, 0)
                    patch = feat[0, :, top: min(r + self.r2 + 1, H), left: min(c + self.r2 + 1, W)]
                    diff = patch - self.refs[i][:, None, None]
                    d = diff.abs().sum(0) if cfg.tracking_distance == "l1" else torch.linalg.norm(diff, dim=0)
                    k = int(d.reshape(-1).argmin())
                    self.handles[i, 0], self.handles[i, 1] = top + k // d.shape[1], left + k % d.shape[1]
        dist = torch.linalg.norm(self.targets - self.handles, dim=1)
        if bool((dist <= self.stop_px).all()):
            return True
        # The pixel grid is made on the CPU and moved, as the official code does.
        ys = torch.linspace(0, H, H) if cfg.official_grid else torch.arange(H, dtype=torch.float32)
        xs = torch.linspace(0, W, W) if cfg.official_grid else torch.arange(W, dtype=torch.float32)
        yy, xx = (t.to(feat.device) for t in torch.meshgrid(ys, xs, indexing="ij"))
        loss = 0
        for i in range(len(self.handles)):
            if dist[i] <= 1:
                continue
            p, t = self.handles[i], self.targets[i]
            rows, cols = torch.where(((yy - p[0]) ** 2 + (xx - p[1]) ** 2) ** 0.5 < self.r1)
            d = (t - p) / (torch.linalg.norm(t - p) + 1e-7)
            grid = torch.stack([pixels_to_normalized(cols + d[1], W), pixels_to_normalized(rows + d[0], H)], -1)
            moved = F.grid_sample(feat.float(), grid[None, None], align_corners=True).squeeze(2)
            loss = loss + F.l1_loss(feat[:, :, rows, cols].detach(), moved)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return False
