"""StableDrag (GAN version): discriminative point tracking and confidence-based motion supervision.

Cui et al., "StableDrag: Stable Dragging for Point-based Image Editing", ECCV 2024 (arXiv 2403.04437).
Written here from the paper's description of its two parts; no code of theirs was available here, so the
values marked "chosen here" below are this implementation's, not the paper's.

Discriminative tracking. Each handle i gets a tracking model z_i, a 1x1 convolution (C weights w_i and
a bias b_i) learned on the fly on the first image's features F0 around the handle p_i^0: over the search
window Omega(p_i^0, r2) the filter's response should be a Gaussian label centred on the handle,

    min_z  mean_q ( w_i . F0(q) + b_i - y_i(q) )^2 + mu |w_i|^2,   y_i(q) = exp(-|q - p_i^0|^2 / (2 sigma^2)),

initialised from the template f_i = F0(p_i^0) (w_i = f_i / |f_i|^2, so the response at the handle is 1)
and fitted by Adam at the first step (`fit_steps` steps, lr `fit_lr`). Because it sees the background of
the window, it learns what tells the handle apart from its neighbours, which nearest-neighbour matching
(DragGAN's tracking) does not. Each later step, every handle moves to the best score in its window,
combining the learned response with the template matching it refines:

    p_i = argmax_{q in Omega(p_i, r2)}  S_i(q),   S_i(q) = w_i . F(q) + b_i - beta * |F(q) - f_i|_1 / D_i,

with D_i the mean template distance over the first window (a scale of the features, so beta is unit-free).
The tracking confidence is the response at the new handle relative to the fitted response at the first handle,
c_i = (w_i . F(p_i) + b_i) / (w_i . f_i + b_i) (1 = as at the start; a ridge fit on smooth features does not
reach the label's peak of 1, so the raw response would be low from the first step). The filter is fitted on
features divided by their RMS, so that Adam's step size suits any generator's feature scale.

Confidence-based motion supervision ("latent enhancement"). DragGAN's loss moves the features at the
handle one pixel towards the target, taking the current features as the reference: when the handle's
features have degraded (low confidence) it keeps dragging what is no longer the handle. StableDrag then
takes the first image's features as the reference instead:

    L = sum_i mean_{q in disk(p_i, r1)} | R_i(q) - F(q + d_i) |_1,
    R_i(q) = sg(F(q))                         if c_i >= tau,
    R_i(q) = F0(q - p_i + p_i^0)  (the template) otherwise,

plus the session's mask term. Chosen here: sigma = r1 px, mu = 0.1, beta = 0.5, tau = 0.8, fit_steps = 100,
fit_lr = 0.01 (the paper's GAN setting optimises the tracker at the first step, then uses it unchanged).

The step is capture-safe: after the first step (which fits the filters) every step runs the same operations, the
confidences updated in place, so that on CUDA it replays as one graph.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from draggan.features import bilinear_at, disk_pixels, resized_features_at
from draggan.methods.base import DragMethod, StepOutput
from draggan.methods.registry import register_method


@dataclass
class StableDragOptions:
    """StableDrag's settings beyond DragConfig (`drag.method_options`); every value is chosen here."""

    tau: float = 0.8  # confidence below which the motion supervision takes the first image's features
    beta: float = 0.5  # weight of the (normalised) template distance in the tracking score
    mu: float = 0.1  # ridge weight of the tracking filter
    sigma: float | None = None  # width of the Gaussian label in image pixels (None = r1)
    fit_steps: int = 100  # Adam steps fitting the tracking filter at the first step
    fit_lr: float = 0.01  # their learning rate

    def validate(self) -> None:
        for name in ("tau", "beta", "mu", "fit_lr"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not v >= 0 or v == float("inf"):
                raise ValueError(f"stabledrag {name}={v!r} must be a finite number >= 0")
        if self.sigma is not None and not (isinstance(self.sigma, (int, float)) and 0 < self.sigma < float("inf")):
            raise ValueError(f"stabledrag sigma={self.sigma!r} must be a positive number or null")
        if not (isinstance(self.fit_steps, int) and 0 <= self.fit_steps <= 100_000):
            raise ValueError(f"stabledrag fit_steps={self.fit_steps!r} must be a whole number in [0, 100000]")


@register_method("stabledrag")
class StableDrag(DragMethod):
    """A StableDrag edit (see the module docstring); each step reports the tracking confidences (`confidence`)."""

    Options = StableDragOptions
    state_names = ("filter_w", "filter_b", "template", "scale", "confidence", "response0")
    capture_safe = True

    def __init__(self, edit, options=None, tracker=None):
        super().__init__(edit, options, tracker)
        self.feat_first: torch.Tensor | None = None  # the first image's features (the fallback reference)

    def resume(self, first_features: torch.Tensor) -> None:
        self.feat_first = first_features

    def _window(self, feat: torch.Tensor, centre_rc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                                                             torch.Tensor]:
        """Features of the (2 r2 + 1)^2 window around each centre: [C, N, K, K], rows, cols, valid [N, K, K]."""
        H, W = self.edit.size
        r = self.edit.r2
        k = 2 * r + 1
        centre = centre_rc.round().to(torch.int64)
        offsets = torch.arange(-r, r + 1, device=feat.device)
        rows = (centre[:, 0, None] + offsets)[:, :, None].expand(-1, k, k)
        cols = (centre[:, 1, None] + offsets)[:, None, :].expand(-1, k, k)
        valid = (rows >= 0) & (rows < H) & (cols >= 0) & (cols < W)
        return resized_features_at(feat, self.edit.size, rows.clamp(0, H - 1), cols.clamp(0, W - 1)), rows, cols, valid

    def _fit_tracker(self, feat0: torch.Tensor) -> None:
        """The tracking filters z_i = (w_i, b_i), fitted to a Gaussian label on the first window."""
        opts, edit = self.options, self.edit
        window, rows, cols, valid = self._window(feat0, edit.handles0_rc)  # [C, N, K, K]
        c0 = edit.handles0_rc.round()
        sigma = float(opts.sigma) if opts.sigma is not None else float(edit.r1)
        d2 = (rows.to(torch.float32) - c0[:, 0, None, None]) ** 2 + (cols.to(torch.float32) - c0[:, 1, None, None]) ** 2
        label = torch.exp(-d2 / (2 * sigma ** 2))
        self.template = resized_features_at(feat0, edit.size, c0[:, 0].to(torch.int64), c0[:, 1].to(torch.int64)).T  # [N, C]
        weight = valid.to(torch.float32)
        rms = ((window.square().mean(0) * weight).sum() / weight.sum()).sqrt().clamp(min=1e-12)
        x = window.movedim(0, -1) / rms  # [N, K, K, C], fitted at unit scale (Adam's steps then suit any generator)
        with torch.enable_grad():
            t = self.template / rms
            w = (t / t.square().sum(1, keepdim=True).clamp(min=1e-12)).clone().requires_grad_(True)
            b = torch.zeros(len(w), device=w.device, requires_grad=True)
            opt = torch.optim.Adam([w, b], lr=opts.fit_lr)
            for _ in range(opts.fit_steps):
                opt.zero_grad(set_to_none=True)
                response = (x * w[:, None, None, :]).sum(-1) + b[:, None, None]
                fit = ((response - label) ** 2 * weight).sum(dim=(1, 2)) / weight.sum(dim=(1, 2))
                (fit + opts.mu * w.square().sum(1)).sum().backward()
                opt.step()
        w = w.detach() / rms
        self.filter_w, self.filter_b = w, b.detach()
        dist = (window - self.template.T[:, :, None, None]).abs().sum(0)  # [N, K, K]
        self.scale = ((dist * weight).sum(dim=(1, 2)) / weight.sum(dim=(1, 2))).clamp(min=1e-6)
        self.response0 = ((self.filter_w * self.template).sum(1) + self.filter_b).clamp(min=1e-6)
        self.confidence = torch.ones_like(self.response0)

    def _track(self, feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Handles at the best score S_i of their windows, and their confidences c_i."""
        window, rows, cols, valid = self._window(feat, self.edit.handles_rc)
        response = torch.einsum("cnij,nc->nij", window, self.filter_w) + self.filter_b[:, None, None]
        dist = (window - self.template.T[:, :, None, None]).abs().sum(0) / self.scale[:, None, None]
        score = (response - self.options.beta * dist).masked_fill(~valid, -float("inf")).flatten(1)
        best = score.argmax(dim=1)
        n = torch.arange(len(best), device=best.device)
        new = torch.stack([rows.flatten(1)[n, best], cols.flatten(1)[n, best]], 1).to(torch.float32)
        return new, response.flatten(1)[n, best] / self.response0

    def _motion_loss(self, feat: torch.Tensor, handles_rc: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
        """DragGAN's motion supervision with the first image's features as the reference where c_i < tau."""
        edit = self.edit
        direction = (edit.targets_rc - handles_rc).to(torch.float32)
        direction = direction / (torch.linalg.norm(direction, dim=1, keepdim=True) + 1e-7)
        rows, cols, inside = disk_pixels(handles_rc, edit.r1, edit.size, edit.pixel_grid)
        shift = (edit.handles0_rc.floor() - handles_rc.floor()).to(torch.int64)  # disk offsets around p_i^0
        H, W = edit.size
        rows0 = (rows + shift[:, 0, None, None]).clamp(0, H - 1)
        cols0 = (cols + shift[:, 1, None, None]).clamp(0, W - 1)
        current = resized_features_at(feat, edit.size, rows, cols).detach()
        first = resized_features_at(self.feat_first, edit.size, rows0, cols0)
        confident = (self.confidence >= self.options.tau)[None, :, None, None]
        fixed = torch.where(confident, current, first)
        moved = bilinear_at(feat, edit.size, rows + direction[:, 0, None, None], cols + direction[:, 1, None, None])
        count = inside.sum(dim=(1, 2)).clamp(min=1) * feat.shape[1]
        per_handle = ((fixed - moved).abs() * inside).sum(dim=(0, 2, 3)) / count
        return torch.where(active, per_handle, torch.zeros_like(per_handle)).sum()

    def step(self, first: bool) -> StepOutput:
        edit = self.edit
        feat = edit.features()
        with torch.no_grad():
            if first:
                fd = feat.detach()
                self.feat_first = fd
                self._fit_tracker(fd)
                handles_rc = edit.handles_rc.clone()
            else:
                handles_rc, confidence = self._track(feat.detach())
                self.confidence.copy_(confidence)
        dist = torch.linalg.norm(edit.targets_rc - handles_rc, dim=1)
        active = dist > min(1.0, edit.stop_px)
        loss = self._motion_loss(feat, handles_rc, active)
        hold = edit.mask_loss(feat)
        if hold is not None:
            loss = loss + hold
        return StepOutput(handles_rc=handles_rc, done=(dist <= edit.stop_px).all(), loss=loss, features=feat,
                          extras={"confidence": self.confidence})
