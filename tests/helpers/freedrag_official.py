"""FreeDrag as its authors' GAN code runs it, written from `docs/freedrag-official.md`: a reference for tests.

Ling et al., "FreeDrag: Feature Dragging for Reliable Point-based Image Editing", CVPR 2024. The rules
are those of the authors' `free_drag` with their GUI's settings (github.com/LPengYang/FreeDrag), each
described in `docs/freedrag-official.md`; this is our own code, on the project's generator. It exists to
check that description against the trajectories recorded from their code
(`tests/fixtures/freedrag_official`, `scripts/record_freedrag_official.py`), and as the reference the
library's `official` FreeDrag preset is held to. It is not the library's FreeDrag (`draggan.methods`).

Positions are (row, col) in cells of the feature map inside the loop (the authors' unit) and (x, y) image
pixels at the interface.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from draggan.networks import Generator


@dataclass
class OfficialRun:
    """What one run gives: per Adam step the handles (x, y) used in its loss and each handle's loss."""

    handles_xy_per_step: list = field(default_factory=list)  # [steps][N][2]
    loss_per_step: list = field(default_factory=list)  # [steps][N]
    submotion_ends: list = field(default_factory=list)  # [{'after_step': s, 'loss_end': [N]}]
    branches: dict = field(default_factory=lambda: {"forward": 0, "stay": 0, "back": 0})  # line-search branches taken
    late_cuts: int = 0  # sub-motions cut to one step by the "10 steps after every point was within 1 px" rule
    stop: str = ""  # 'arrived' or 'step limit'
    ws: torch.Tensor | None = None  # the final W+ latent


def sample_raw(feat: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """Bilinear values of `feat` [1, C, h, w] at `pos` [..., 2] (row, col) in cells of the raw map, the cell
    centres at whole numbers (no resize convention) -> [..., C]. Positions are >= 0 and below the last
    row/column: the upper neighbour is always read (as the authors' sampler does)."""
    r, c = pos[..., 0], pos[..., 1]
    r0, c0 = r.to(torch.int64), c.to(torch.int64)  # truncation (= floor for the positions used)
    fr, fc = (r - r0.to(r.dtype))[..., None], (c - c0.to(c.dtype))[..., None]
    f = feat[0]

    def at(rr, cc):
        return f[:, rr, cc].movedim(0, -1)

    return (at(r0, c0) * (1 - fr) * (1 - fc) + at(r0 + 1, c0) * fr * (1 - fc)
            + at(r0, c0 + 1) * (1 - fr) * fc + at(r0 + 1, c0 + 1) * fr * fc)


def patch_offsets(cell_scale: float, *, half_px: float = 3.0) -> torch.Tensor:
    """The 3x3 patch: offsets (row, col) of -half_px, 0, +half_px image pixels, in cells, row-major [9, 2]."""
    k = torch.linspace(-half_px * cell_scale, half_px * cell_scale, 3)
    return torch.stack(torch.meshgrid(k, k, indexing="ij"), -1).reshape(-1, 2)


def official_freedrag(G: Generator, ws0: torch.Tensor, handles_xy, targets_xy, *, mask: np.ndarray | None = None,
                      l_expected: float = 0.3,  # expected loss at the start of a sub-motion (GUI: faces 0.3)
                      d_max: float = 3.0,  # longest sub-motion, in cells of the feature map (GUI: faces 3)
                      handle_size: int = 128,  # resolution of the feature block (GUI: 128)
                      train_rows: int = 6,  # leading W+ rows optimised (GUI: train_layer_index 6)
                      lr: float = 2e-3,  # Adam learning rate (hard-coded)
                      steps_per_motion: int = 5,  # Adam steps of a sub-motion at most (hard-coded)
                      candidates: int = 10,  # points of the line search (hard-coded interval_number)
                      mask_weight: float = 10.0,  # weight of the mask term (hard-coded)
                      max_steps: int = 2000,  # the GUI's default max_step
                      ) -> OfficialRun:
    """Run the authors' FreeDrag rules on `G` from `ws0` [1, num_ws, w_dim]; see `docs/freedrag-official.md`."""
    block = G.synthesis.block_resolutions.index(handle_size)
    H = G.img_height
    s = handle_size / H  # cells per image pixel: positions in the map are s * p (no half-pixel shift)
    l = torch.tensor(l_expected, dtype=torch.float32)
    a, b = math.log(9.0) / (0.6 * l), 0.2 * l  # the template update's logistic weight
    offsets = patch_offsets(s)
    n = len(handles_xy)

    def features(ws):
        # Every forward takes the path of a forward with gradients (unfused modulation in the project's
        # generator), as every forward of the authors' generator does (it stays in training mode): the
        # first features, the steps' and the end-of-sub-motion ones then agree to the last bit where the
        # latent is the same, and the L1 terms that are exactly 0 there (the mask term at the first step,
        # a replaced template at the next) have the gradient 0 of their kink, as in the authors' run.
        with torch.enable_grad():
            x = ws if ws.requires_grad else ws.detach().requires_grad_(True)
            return G.synthesis.features(x, up_to=block, noise_mode="const")[-1]

    def patch(feat, centre):  # [P, C]
        return sample_raw(feat, centre + offsets)

    def distance(feat, centre, template):  # mean |F_patch(c) - T| over the patch and the channels
        return (patch(feat, centre) - template).abs().mean()

    feat0 = features(ws0).detach()
    hold = None
    if mask is not None and np.any(mask == 1):  # the painted region may move; the mask term holds the rest
        m = torch.tensor(mask, dtype=torch.float32)[None, None]
        inside = torch.nn.functional.interpolate(m, size=(handle_size, handle_size), mode="bilinear") > 0
        hold = ~inside.expand_as(feat0)

    handles = torch.tensor([[y, x] for x, y in handles_xy], dtype=torch.float32) * s
    targets = torch.tensor([[y, x] for x, y in targets_xy], dtype=torch.float32) * s
    templates = [patch(feat0, handles[k]) for k in range(n)]
    free = ws0[:, :train_rows].detach().clone().requires_grad_(True)
    fixed = ws0[:, train_rows:].detach()
    optimizer = torch.optim.Adam([free], lr=lr, eps=1e-8)

    run = OfficialRun()
    current = handles.clone()
    search_map = feat0
    arrived = torch.zeros(n, dtype=torch.bool)
    loss_ini = torch.zeros(n)
    loss_end = torch.zeros(n)
    step = 0
    remembered = max_steps  # the step count remembered once every point is within 1 px at a sub-motion's start
    fractions = torch.arange(1, candidates + 1, dtype=torch.float32)[:, None] / candidates

    def line(start, end):
        return (1 - fractions) * start + fractions * end

    def towards(start, target, length):
        gap = target - start
        return start + min(length / (torch.linalg.norm(gap) + 1e-8), 1) * gap

    while step < max_steps:
        if bool(arrived.all()):
            run.stop = "arrived"
            break
        # Where each handle not yet arrived goes next (on the features at the end of the last sub-motion).
        with torch.no_grad():
            for k in range(n):
                if arrived[k]:
                    continue
                if loss_end[k] < 0.5 * l:  # the last sub-motion succeeded (always so before the first)
                    cand = line(current[k], towards(current[k], targets[k], d_max))
                    d = torch.stack([distance(search_map, c, templates[k]) for c in cand])
                    current[k] = cand[torch.argmin((d - l).abs())]
                    run.branches["forward"] += 1
                elif loss_end[k] < loss_ini[k]:  # progress, not there yet: stay
                    run.branches["stay"] += 1
                else:  # failed: step back d_max, then the best of 2 d_max ahead
                    gap = targets[k] - current[k]
                    back = current[k] - min(d_max / (torch.linalg.norm(gap) + 1e-8), 1) * gap  # past it if nearer
                    cand = line(back, towards(back, targets[k], 2 * d_max))
                    d = torch.stack([distance(search_map, c, templates[k]) for c in cand])
                    current[k] = cand[torch.argmin(d)]
                    run.branches["back"] += 1
        remaining = torch.linalg.norm(current - targets, dim=1)

        for i in range(steps_per_motion):
            step += 1
            feat = features(torch.cat([free, fixed], dim=1))
            per_handle = torch.stack([(patch(feat, current[k]) - templates[k]).abs().mean() for k in range(n)])
            loss = per_handle.sum()
            if hold is not None:
                loss = loss + mask_weight * (feat[hold] - feat0[hold]).abs().mean()
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            run.handles_xy_per_step.append([[float(c[1] / s), float(c[0] / s)] for c in current])
            run.loss_per_step.append(per_handle.detach().tolist())
            if i == 0:
                loss_ini = per_handle.detach()
            if per_handle.max() < 0.25 * l:  # early end of the sub-motion
                break
            if step == max_steps:
                break
            if step > remembered + 10:
                run.late_cuts += 1
                break

        feat = features(torch.cat([free, fixed], dim=1)).detach()
        with torch.no_grad():
            now = [patch(feat, current[k]) for k in range(n)]
            loss_end = torch.stack([(now[k] - templates[k]).abs().mean() for k in range(n)])
        run.submotion_ends.append({"after_step": step, "loss_end": loss_end.tolist()})
        if remaining.max() < s:  # every point within 1 image px of its target when the sub-motion began
            remembered = step
        arrived = (torch.linalg.norm(current - targets, dim=1) < s) & (loss_end <= 0.25 * l)
        for k in range(n):
            lam = torch.ones(()) if arrived[k] else 1 / (1 + torch.exp(a * (loss_end[k] - b)))
            templates[k] = lam * now[k] + (1 - lam) * templates[k]
        search_map = feat
    else:
        run.stop = "step limit"
    run.ws = torch.cat([free, fixed], dim=1).detach()
    return run
