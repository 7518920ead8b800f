"""FreeDrag: feature dragging without point tracking.

Ling et al., "FreeDrag: Feature Dragging for Reliable Point-based Image Editing", CVPR 2024
(arXiv 2307.04684). Implemented here from the paper's method section and the authors' GAN code
(github.com/LPengYang/FreeDrag), whose every rule `docs/freedrag-official.md` states; the `official` preset
follows that code step by step (checked against trajectories recorded from it, `tests/fixtures/freedrag_official`).

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
- a handle has arrived when v_i is near its target and L_i^end is below 0.25 l (`arrival`).

The reported handles are the virtual positions v_i (FreeDrag tracks no point). Hyper-parameters of the
authors' GUI for its faces model: d_max = 3 cells of the feature map, l = 0.3, 5 steps per sub-motion, lr
2e-3. Where the library's FreeDrag departs from the authors' code, each departure is an option
(`FreeDragOptions`; `official` sets every one to the authors' rule, docs/evaluation.md gives the measured reason
for the library's choice). The default departs where the measurements favour the library's rule:
- `l_expected=None`: l measured on the first image as the mean template distance of a one-pixel move of each
  handle towards its target (DragGAN's step size), since l is an absolute feature distance that depends on the
  generator; the authors fix it per model (0.3 for faces);
- `sampler='resized'`: the patch reads the feature map resized to the image at pixel centres (the library's
  convention for every method); the authors read the raw map at p * h / H, half a pixel of the image per
  halving of the map from there;
- `arrival='library'`: within the session's stop distance and L^end < 0.25 l; the authors': within 1 px and
  L^end <= 0.25 l;
- `mask_term='session'`: the session's mask term (`DragConfig.mask_loss`, `lambda_mask`); the authors':
  lambda times the mean |F - F0| over the feature cells that the bilinearly resized mask leaves at 0.
The learning rate is `DragConfig.lr` (the authors' 2e-3; the recommended settings' 1e-2 below 128 px). Three
rules the library once departed in are the authors' by default, and the library's remain options:
- `patch_px=3.0` (the authors' +-3 image px); None: the patch spans +-r1 (the session's radius);
- `arrived_in_loss=True` (the authors'); False: an arrived handle leaves the loss and the early-end test;
- `late_cut=10` (the authors'): every sub-motion is cut to one step from 10 steps after all handles were within
  1 px at the start of a sub-motion (rule 5 of the note; it does not stop the run); None: no cut.

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
from draggan.presets import SHARED_PRESETS

CANDIDATES = 10  # candidate points of the line search (the official GUI's interval_number)
L_PROBE_PX = 1.0  # l_expected=None: l is the template distance of a move of this many pixels on the first image
NEVER = 2 ** 62  # a step count no run reaches
LATE_CUT_STATE = ("steps", "remaining", "near_since")  # the state the late cut reads (absent from older saves)
SAMPLERS = ("resized", "raw")
ARRIVALS = ("library", "official")
MASK_TERMS = ("session", "official")


@dataclass
class FreeDragOptions:
    """FreeDrag's settings beyond DragConfig (`drag.method_options`); the module docstring says what each
    departure from the authors' code is, docs/evaluation.md why the library makes it."""

    d_max: float = 3.0  # longest sub-motion, in cells of the feature map (paper / GUI: 3 at 128x128 features)
    l_expected: float | None = None  # expected initial loss of a sub-motion (GUI faces: 0.3); None = measured (1 px)
    steps_per_motion: int = 5  # optimisation steps of a sub-motion at most (GUI: 5)
    sampler: str = "resized"  # the patch reads: 'resized' map at pixel centres, or 'raw' map at p * h / H (authors)
    patch_px: float | None = 3.0  # half-width of the 3x3 patch in image px (authors: 3); None = the session's r1
    arrived_in_loss: bool = True  # an arrived handle stays in the loss and the early-end test (authors: True)
    arrival: str = "library"  # 'library' (within the session's stop distance, L < l/4) or 'official' (< 1 px, L <= l/4)
    late_cut: int | None = 10  # steps after all handles were within 1 px past which sub-motions have 1 step (authors: 10)
    mask_term: str = "session"  # 'session' (DragConfig's term) or 'official' (mean |F - F0| over the held cells)

    def validate(self) -> None:
        if not (isinstance(self.d_max, (int, float)) and math.isfinite(self.d_max) and self.d_max > 0):
            raise ValueError(f"freedrag d_max={self.d_max!r} must be a positive number")
        if self.l_expected is not None and not (isinstance(self.l_expected, (int, float))
                                                and math.isfinite(self.l_expected) and self.l_expected > 0):
            raise ValueError(f"freedrag l_expected={self.l_expected!r} must be a positive number or null")
        if not (isinstance(self.steps_per_motion, int) and self.steps_per_motion >= 1):
            raise ValueError(f"freedrag steps_per_motion={self.steps_per_motion!r} must be a whole number >= 1")
        if self.patch_px is not None and not (isinstance(self.patch_px, (int, float))
                                              and math.isfinite(self.patch_px) and self.patch_px > 0):
            raise ValueError(f"freedrag patch_px={self.patch_px!r} must be a positive number or null")
        if self.late_cut is not None and not (isinstance(self.late_cut, int) and not isinstance(self.late_cut, bool)
                                              and self.late_cut >= 0):
            raise ValueError(f"freedrag late_cut={self.late_cut!r} must be a whole number >= 0 or null")
        if not isinstance(self.arrived_in_loss, bool):
            raise ValueError(f"freedrag arrived_in_loss={self.arrived_in_loss!r} must be true or false")
        for name, allowed in (("sampler", SAMPLERS), ("arrival", ARRIVALS), ("mask_term", MASK_TERMS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"freedrag {name}={getattr(self, name)!r} must be one of {', '.join(allowed)}")


# The authors' GAN code with their GUI's settings for faces (docs/freedrag-official.md): the 128x128 block, lr 2e-3,
# rows 0-5, 2000 steps at most, float32, their mask weight 10, and every option at their rule.
OFFICIAL: dict = dict(feature_block=5, lr=2e-3, optimize_ws=6, latent_space="w+", max_steps=2000, force_fp32=True,
                      small_generator_rule=False, lambda_mask=10.0, noise_mode="const",
                      method_options=dict(d_max=3.0, l_expected=0.3, steps_per_motion=5, sampler="raw", patch_px=3.0,
                                          arrived_in_loss=True, arrival="official", late_cut=10,
                                          mask_term="official"))


@register_method("freedrag")
class FreeDrag(DragMethod):
    """A FreeDrag edit (see the module docstring); the session's handles are the virtual positions v_i."""

    Options = FreeDragOptions
    presets = {**SHARED_PRESETS, "official": OFFICIAL}
    state_names = ("template", "l", "loss_ini", "reached", "motion_step", "motion_ends", *LATE_CUT_STATE)
    tracks_handles = False
    capture_safe = True

    def __init__(self, edit, options=None, tracker=None):
        super().__init__(edit, options, tracker)
        h = edit.G.synthesis.block_resolutions[edit.config.feature_block]
        self.cell = edit.size[0] / h  # image pixels per feature cell
        self.d_max = self.options.d_max * self.cell  # in image pixels
        half = self.options.patch_px if self.options.patch_px is not None else edit.r1
        offsets = torch.tensor([-half, 0.0, half], device=edit.device)
        self.patch = torch.stack(torch.meshgrid(offsets, offsets, indexing="ij"), -1).reshape(-1, 2)  # [P, 2] (dy, dx)
        self.held = None  # mask_term='official': [1, C, h, w] float, 1 on the feature cells the mask term holds
        self.feat0 = None  # ... and the first image's features there

    def reset(self) -> None:
        super().reset()  # template [N, C, P], l (0-d), loss_ini [N]: taken at the first step
        n, device = len(self.edit.handles_rc), self.edit.device
        self.reached = torch.zeros(n, dtype=torch.bool, device=device)  # [N] handles done
        self.motion_step = torch.zeros((), dtype=torch.int64, device=device)  # steps into the current sub-motion
        self.motion_ends = torch.ones((), dtype=torch.bool, device=device)  # a sub-motion ends before the next step
        self.steps = torch.zeros((), dtype=torch.int64, device=device)  # steps taken (the late cut counts them)
        self.remaining = torch.full((), math.inf, device=device)  # largest distance to a target after the line search
        self.near_since = torch.full((), NEVER, dtype=torch.int64, device=device)  # the late cut's step count

    def resume(self, first_features: torch.Tensor) -> None:
        self._hold(first_features)

    def load_state(self, state) -> None:
        if state is not None and not any(name in state for name in LATE_CUT_STATE):
            # saved before the late cut was an option (so without one): its counters as they are without it
            state = {**state, "steps": 0, "remaining": math.inf, "near_since": NEVER}
        super().load_state(state)

    # --- geometry ----------------------------------------------------------------------------

    def _patch(self, feat: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
        """Patch features around `centres` [..., 2] (row, col) image px -> [..., C, P]."""
        pts = centres[..., None, :] + self.patch  # [..., P, 2]
        if self.options.sampler == "raw":
            v = raw_bilinear(feat, pts[..., 0] / self.cell, pts[..., 1] / self.cell)
        else:
            H, W = self.edit.size
            v = bilinear_at(feat, self.edit.size, pts[..., 0].clamp(0, H - 1), pts[..., 1].clamp(0, W - 1))
        return v.movedim(0, -2)  # [C, ..., P] -> [..., C, P]

    def _distance(self, feat: torch.Tensor, centres: torch.Tensor, template: torch.Tensor) -> torch.Tensor:
        """Mean |F_patch(c) - T| of each centre c [N, K, 2] against its handle's template [N, C, P] -> [N, K]."""
        return (self._patch(feat, centres) - template[:, None]).abs().mean(dim=(-2, -1))

    def _line(self, start: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
        """CANDIDATES points from just after `start` to `end`, [N, K, 2]. With the authors' sampler, in their
        arithmetic (a float rounding apart, which their long tiny_l recording needs); otherwise in the library's."""
        k = torch.arange(1, CANDIDATES + 1, device=start.device, dtype=start.dtype)[None, :, None] / CANDIDATES
        if self.options.sampler == "raw":
            return (1 - k) * start[:, None] + k * end[:, None]
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

    def _arrived(self, dist: torch.Tensor, loss_end: torch.Tensor) -> torch.Tensor:
        if self.options.arrival == "official":
            return (dist < 1.0) & (loss_end <= 0.25 * self.l)
        return (dist <= self.edit.stop_px) & (loss_end < 0.25 * self.l)

    # --- the mask term -----------------------------------------------------------------------

    def _hold(self, fd: torch.Tensor) -> None:
        """mask_term='official': the feature cells held (those the mask, resized to the map, leaves at 0), and the
        first features there."""
        mask = self.edit.mask
        if self.options.mask_term != "official" or mask is None:
            return
        small = torch.nn.functional.interpolate(mask.to(torch.float32)[None, None], size=tuple(fd.shape[-2:]),
                                                mode="bilinear", align_corners=False)
        self.held = (small <= 0).to(torch.float32).expand_as(fd)
        self.feat0 = fd

    def _mask_term(self, feat: torch.Tensor) -> torch.Tensor | None:
        if self.options.mask_term != "official":
            return self.edit.mask_loss(feat)
        if self.held is None:
            return None
        count = self.held.sum().clamp(min=1)
        return self.edit.config.lambda_mask * ((feat - self.feat0).abs() * self.held).sum() / count

    # --- the step ----------------------------------------------------------------------------

    def _begin(self, fd: torch.Tensor) -> None:
        """The first step: templates from the first image, l, and the first line search."""
        edit = self.edit
        self._hold(fd)
        self.template = self._patch(fd, edit.handles_rc)
        if self.options.l_expected is None:  # the template distance of a one-pixel move (DragGAN's step)
            probe = self._towards(edit.handles_rc, L_PROBE_PX)
            self.l = self._distance(fd, probe[:, None], self.template).mean().clamp(min=1e-6)
        else:
            self.l = torch.tensor(float(self.options.l_expected), device=edit.device)
        edit.handles_rc.copy_(self._relocate(fd, None))
        self.remaining.copy_(torch.linalg.norm(edit.targets_rc - edit.handles_rc, dim=1).max())  # finite when saved
        self.loss_ini = torch.full((len(edit.handles_rc),), math.inf, device=edit.device)
        self.motion_step.zero_()
        self.motion_ends.fill_(False)

    def _end_motion(self, fd: torch.Tensor) -> None:
        """The end of a sub-motion, where it is due (`motion_ends`): done flags, template update, line search.
        Computed every step and applied with `where`, so that every step runs the same operations."""
        edit, ends, l = self.edit, self.motion_ends, self.l
        if edit.device.type == "cpu" and not edit.graphed and not bool(ends):
            return  # eagerly on the CPU the flag is read for free: skip what `where` would discard (same numbers)
        here = self._patch(fd, edit.handles_rc)  # [N, C, P]: read once, for L^end and the template update
        loss_end = (here - self.template).abs().mean(dim=(-2, -1))
        dist = torch.linalg.norm(edit.targets_rc - edit.handles_rc, dim=1)
        late_cut = self.options.late_cut is not None  # its bookkeeping only where it is chosen (a static choice)
        if late_cut:
            near = ends & (self.remaining < 1.0)  # every handle was within 1 px when this sub-motion began
            self.near_since.copy_(torch.where(near, self.steps, self.near_since))
        self.reached.copy_(torch.where(ends, self._arrived(dist, loss_end), self.reached))
        a, b = math.log(9.0) / (0.6 * l), 0.2 * l
        lam = torch.where(self.reached, torch.ones_like(loss_end), torch.sigmoid(-a * (loss_end - b)))
        updated = lam[:, None, None] * here + (1 - lam[:, None, None]) * self.template
        self.template.copy_(torch.where(ends, updated, self.template))
        edit.handles_rc.copy_(torch.where(ends, self._relocate(fd, loss_end), edit.handles_rc))
        if late_cut:
            remaining = torch.linalg.norm(edit.targets_rc - edit.handles_rc, dim=1).max()
            self.remaining.copy_(torch.where(ends, remaining, self.remaining))
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
        # every handle counts (the authors'), or those not yet arrived: a static choice, so no mask where all count
        counted = per_handle if self.options.arrived_in_loss else torch.where(~self.reached, per_handle, 0.0)
        loss = counted.sum()
        hold = self._mask_term(feat)
        if hold is not None:
            loss = loss + hold
        self.motion_step.add_(1)
        worst = counted.detach().max()
        ends = (self.motion_step >= self.options.steps_per_motion) | (worst < 0.25 * self.l)
        if self.options.late_cut is not None:  # one step per sub-motion, `late_cut` steps after all were near
            self.steps.add_(1)
            ends = ends | (self.steps > self.near_since + self.options.late_cut)
        self.motion_ends.copy_(ends)
        return StepOutput(handles_rc=handles_rc, done=self.reached.all(), loss=loss, features=feat)


def raw_bilinear(feat: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """Bilinear values of the raw map `feat` [1, C, h, w] at (rows, cols) in its cells, cell centres at whole
    numbers (the FreeDrag authors' sampler; positions are clamped to the map, where theirs is undefined outside
    it) -> [C, *rows.shape]."""
    h, w = feat.shape[-2:]
    r = rows.clamp(0, h - 1)
    c = cols.clamp(0, w - 1)
    r0, c0 = r.floor(), c.floor()
    fr, fc = r - r0, c - c0
    r0, c0 = r0.to(torch.int64), c0.to(torch.int64)
    r1, c1 = (r0 + 1).clamp(max=h - 1), (c0 + 1).clamp(max=w - 1)
    flat = feat.reshape(feat.shape[1], -1)

    def at(rr: torch.Tensor, cc: torch.Tensor) -> torch.Tensor:
        return flat.index_select(1, (rr * w + cc).reshape(-1)).reshape(flat.shape[0], *rr.shape)

    return (at(r0, c0) * (1 - fr) * (1 - fc) + at(r1, c0) * fr * (1 - fc)
            + at(r0, c1) * (1 - fr) * fc + at(r1, c1) * fr * fc)
