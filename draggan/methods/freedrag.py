"""FreeDrag: feature dragging without point tracking.

Ling et al., "FreeDrag: Feature Dragging for Reliable Point-based Image Editing", CVPR 2024
(arXiv 2307.04684). Implemented here from the paper's method section; the official GUI's defaults
(github.com/LPengYang/FreeDrag) give the hyper-parameters where the paper leaves them to the model.

Each handle i carries a template feature T_i (the features of a 3x3 patch around it, first taken from
the first image) and a "virtual" position v_i on the line from the handle to its target. The drag is
a sequence of sub-motions; in each, the latent is optimised for at most `steps_per_motion` steps on

    L = sum_i || F_patch(v_i) - sg(T_i) ||_1          (mean over channels and patch samples)

(plus the mask term), stopping early when every L_i < 0.25 l (l: the expected initial loss of a
sub-motion). At the end of a sub-motion, with L_i^end the loss on the new features:

- adaptive template (quality-controlled update):
      lambda_i = 1 / (1 + exp(a (L_i^end - b))),  a = ln 9 / (0.6 l),  b = 0.2 l
      T_i <- lambda_i F_patch(v_i) + (1 - lambda_i) T_i
  (a well-reached sub-motion replaces much of the template, a poor one little of it; a handle at its
  target keeps lambda = 1);
- line search with backtracking: with D(c) = || F_patch(c) - T_i ||_1 and the line towards the target,
  * L_i^end < 0.5 l (the motion succeeded): the next v_i is the point c of 10 evenly spaced candidates up
    to d_max ahead whose D(c) is closest to l (a sub-motion of about the expected difficulty);
  * 0.5 l <= L_i^end < L_i^ini (progress, not yet there): v_i stays;
  * otherwise (the motion failed): step back by d_max and take the candidate of minimal D(c) over the
    2 d_max ahead of that point.
- a handle is done when v_i is within the session's stop distance of its target and L_i^end < 0.25 l.

The reported handles are the virtual positions v_i (FreeDrag tracks no point). Hyper-parameters
(paper / official GUI for the 512-px faces): d_max = 3 cells of the feature map, l = 0.3, 5 steps per
sub-motion, lr 2e-3 (DragConfig.lr). The patch spans +-r1 image pixels (the GUI's 3x3 window of
+-3 px at 512 px, the paper's r1). l is an absolute feature distance that depends on the generator:
`l_expected=None` (the default) measures it on the first image as the mean template distance of a
one-pixel move of each handle towards its target (the size of DragGAN's step), so that a sub-motion asks
for about a pixel's change of the features (the measurement that chose it: docs/evaluation.md).

The step is capture-safe: after the first step every step runs the same operations, the end of a sub-motion
(template update and line search) computed each step and applied where it is due, its state in device tensors
updated in place, so that on CUDA it replays as one graph.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from draggan.features import bilinear_at
from draggan.methods.base import DragMethod, StepOutput
from draggan.methods.registry import register_method

CANDIDATES = 10  # candidate points of the line search (the official GUI's interval_number)
L_PROBE_PX = 1.0  # l_expected=None: l is the template distance of a move of this many pixels on the first image


@dataclass
class FreeDragOptions:
    """FreeDrag's settings beyond DragConfig (`drag.method_options`)."""

    d_max: float = 3.0  # longest sub-motion, in cells of the feature map (paper / GUI: 3 at 128x128 features)
    l_expected: float | None = None  # expected initial loss of a sub-motion (GUI faces: 0.3); None = measured (1 px)
    steps_per_motion: int = 5  # optimisation steps of a sub-motion at most (GUI: 5)

    def validate(self) -> None:
        if not (isinstance(self.d_max, (int, float)) and math.isfinite(self.d_max) and self.d_max > 0):
            raise ValueError(f"freedrag d_max={self.d_max!r} must be a positive number")
        if self.l_expected is not None and not (isinstance(self.l_expected, (int, float))
                                                and math.isfinite(self.l_expected) and self.l_expected > 0):
            raise ValueError(f"freedrag l_expected={self.l_expected!r} must be a positive number or null")
        if not (isinstance(self.steps_per_motion, int) and self.steps_per_motion >= 1):
            raise ValueError(f"freedrag steps_per_motion={self.steps_per_motion!r} must be a whole number >= 1")


@register_method("freedrag")
class FreeDrag(DragMethod):
    """A FreeDrag edit (see the module docstring); the session's handles are the virtual positions v_i."""

    Options = FreeDragOptions
    state_names = ("template", "l", "loss_ini", "reached", "motion_step", "motion_ends")
    tracks_handles = False
    capture_safe = True

    def __init__(self, edit, options=None, tracker=None):
        super().__init__(edit, options, tracker)
        h = edit.G.synthesis.block_resolutions[edit.config.feature_block]
        self.cell = edit.size[0] / h  # image pixels per feature cell
        self.d_max = self.options.d_max * self.cell  # in image pixels
        offsets = torch.tensor([-edit.r1, 0.0, edit.r1], device=edit.device)
        self.patch = torch.stack(torch.meshgrid(offsets, offsets, indexing="ij"), -1).reshape(-1, 2)  # [P, 2] (dy, dx)

    def reset(self) -> None:
        super().reset()  # template [N, C, P], l (0-d), loss_ini [N]: taken at the first step
        n, device = len(self.edit.handles_rc), self.edit.device
        self.reached = torch.zeros(n, dtype=torch.bool, device=device)  # [N] handles done
        self.motion_step = torch.zeros((), dtype=torch.int64, device=device)  # steps into the current sub-motion
        self.motion_ends = torch.ones((), dtype=torch.bool, device=device)  # a sub-motion ends before the next step

    # --- geometry ----------------------------------------------------------------------------

    def _patch(self, feat: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
        """Patch features around `centres` [..., 2] (row, col) -> [..., C, P] (bilinear in the resized map)."""
        pts = centres[..., None, :] + self.patch  # [..., P, 2]
        H, W = self.edit.size
        ys, xs = pts[..., 0].clamp(0, H - 1), pts[..., 1].clamp(0, W - 1)
        v = bilinear_at(feat, self.edit.size, ys, xs)  # [C, ..., P]
        return v.movedim(0, -2)

    def _distance(self, feat: torch.Tensor, centres: torch.Tensor, template: torch.Tensor) -> torch.Tensor:
        """Mean |F_patch(c) - T| of each centre c [N, K, 2] against its handle's template [N, C, P] -> [N, K]."""
        return (self._patch(feat, centres) - template[:, None]).abs().mean(dim=(-2, -1))

    def _line(self, start: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
        """CANDIDATES points from just after `start` to `end`, [N, K, 2]."""
        k = torch.arange(1, CANDIDATES + 1, device=start.device, dtype=start.dtype)[None, :, None] / CANDIDATES
        return start[:, None] + k * (end - start)[:, None]

    def _towards(self, start: torch.Tensor, length: torch.Tensor | float) -> torch.Tensor:
        """The point `length` px from `start` towards the target, not beyond it."""
        gap = self.edit.targets_rc - start
        d = torch.linalg.norm(gap, dim=1, keepdim=True)
        return start + torch.clamp(length / (d + 1e-8), max=1.0) * gap

    def _relocate(self, feat: torch.Tensor, loss_end: torch.Tensor | None) -> torch.Tensor:
        """The line search with backtracking: the next virtual positions [N, 2]."""
        cur, targets = self.edit.handles_rc, self.edit.targets_rc
        l = self.l
        ahead = self._line(cur, self._towards(cur, self.d_max))
        pick = (self._distance(feat, ahead, self.template) - l).abs().argmin(dim=1)
        forward = ahead[torch.arange(len(cur), device=cur.device), pick]
        if loss_end is None:  # the first sub-motion
            return forward
        back = cur - torch.clamp(self.d_max / (torch.linalg.norm(targets - cur, dim=1, keepdim=True) + 1e-8),
                                 max=1.0) * (targets - cur)
        wide = self._line(back, self._towards(back, 2 * self.d_max))
        best = wide[torch.arange(len(cur), device=cur.device), self._distance(feat, wide, self.template).argmin(dim=1)]
        new = torch.where((loss_end < 0.5 * l)[:, None], forward,
                          torch.where((loss_end < self.loss_ini)[:, None], cur, best))
        H, W = self.edit.size
        new = torch.stack([new[:, 0].clamp(0, H - 1), new[:, 1].clamp(0, W - 1)], 1)
        return torch.where(self.reached[:, None], cur, new)

    # --- the step ----------------------------------------------------------------------------

    def _begin(self, fd: torch.Tensor) -> None:
        """The first step: templates from the first image, l, and the first line search."""
        edit = self.edit
        self.template = self._patch(fd, edit.handles_rc)
        if self.options.l_expected is None:  # the template distance of a one-pixel move (DragGAN's step)
            probe = self._towards(edit.handles_rc, L_PROBE_PX)
            self.l = self._distance(fd, probe[:, None], self.template).mean().clamp(min=1e-6)
        else:
            self.l = torch.tensor(float(self.options.l_expected), device=edit.device)
        edit.handles_rc.copy_(self._relocate(fd, None))
        self.loss_ini = torch.full((len(edit.handles_rc),), math.inf, device=edit.device)
        self.motion_step.zero_()
        self.motion_ends.fill_(False)

    def _end_motion(self, fd: torch.Tensor) -> None:
        """The end of a sub-motion, where it is due (`motion_ends`): done flags, template update, line search.
        Computed every step and applied with `where`, so that every step runs the same operations."""
        edit, ends, l = self.edit, self.motion_ends, self.l
        if edit.device.type == "cpu" and not edit.graphed and not bool(ends):
            return  # eagerly on the CPU the flag is read for free: skip what `where` would discard (same numbers)
        loss_end = self._distance(fd, edit.handles_rc[:, None], self.template)[:, 0]
        dist = torch.linalg.norm(edit.targets_rc - edit.handles_rc, dim=1)
        self.reached.copy_(torch.where(ends, (dist <= edit.stop_px) & (loss_end < 0.25 * l), self.reached))
        a, b = math.log(9.0) / (0.6 * l), 0.2 * l
        lam = torch.where(self.reached, torch.ones_like(loss_end), torch.sigmoid(-a * (loss_end - b)))
        updated = lam[:, None, None] * self._patch(fd, edit.handles_rc) + (1 - lam[:, None, None]) * self.template
        self.template.copy_(torch.where(ends, updated, self.template))
        edit.handles_rc.copy_(torch.where(ends, self._relocate(fd, loss_end), edit.handles_rc))
        self.motion_step.copy_(torch.where(ends, torch.zeros_like(self.motion_step), self.motion_step))

    def step(self, first: bool) -> StepOutput:
        edit = self.edit
        feat = edit.features()
        with torch.no_grad():
            fd = feat.detach()
            if first:
                self._begin(fd)
            else:
                self._end_motion(fd)
        handles_rc = edit.handles_rc.clone()
        per_handle = (self._patch(feat, handles_rc) - self.template).abs().mean(dim=(-2, -1))  # [N]
        self.loss_ini.copy_(torch.where(self.motion_step == 0, per_handle.detach(), self.loss_ini))
        active = ~self.reached
        loss = torch.where(active, per_handle, torch.zeros_like(per_handle)).sum()
        hold = edit.mask_loss(feat)
        if hold is not None:
            loss = loss + hold
        self.motion_step.add_(1)
        worst = torch.where(active, per_handle.detach(), torch.zeros_like(per_handle)).max()
        self.motion_ends.copy_((self.motion_step >= self.options.steps_per_motion) | (worst < 0.25 * self.l))
        return StepOutput(handles_rc=handles_rc, done=self.reached.all(), loss=loss, features=feat)
