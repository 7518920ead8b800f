"""DragGAN: motion supervision and nearest-neighbour point tracking.

Pan et al., "Drag Your GAN: Interactive Point-based Manipulation on the Generative Image Manifold", SIGGRAPH 2023.

One step, in the official code's order: (1) synthesise up to the feature block at the current latent; (2) track
every handle to the pixel of its search window (half-width r2) whose feature is nearest (L1 in the paper, L2 in the
official code) to the handle's feature in the first image (skipped on the first step, where it is the identity);
(3) stop if every handle is close enough to its target, else the motion supervision loss at the tracked handles
(per handle, mean |F(q).detach() - F(q + d)| over the disk q of radius r1, d the unit direction to the target),
plus the mask term. The session takes one Adam step on the first `optimize_ws` rows of the W+ latent.

A `PointTracker` may replace step (2) (the paper's ablation); the step is then not captured as a CUDA graph.
"""

from __future__ import annotations

import torch

from draggan.features import motion_supervision_loss, resized_features_at, track_points
from draggan.methods.base import DragMethod, StepOutput
from draggan.methods.registry import register_method
from draggan.point_tracker import TrackingStep
from draggan.points import rc_to_xy, xy_to_rc


@register_method("draggan")
class DragGAN(DragMethod):
    """DragGAN's step (see the module docstring); its one piece of state, the handles' features in the first image
    (`refs`), is taken at the first step and follows from the first image, so it is not saved per step."""

    accepts_tracker = True
    capture_safe = True  # (not with an in-loop tracker, which runs Python code on the host each step)

    def __init__(self, edit, options=None, tracker=None):
        super().__init__(edit, options, tracker)
        self.refs: torch.Tensor | None = None  # [N, C] the handles' features in the first image
        if tracker is not None:
            self.capture_safe = False

    def take_references(self, feat: torch.Tensor) -> None:
        """Keep the first image's features at the (rounded) first handles."""
        rc = self.edit.handles0_rc.round().to(torch.int64)
        self.refs = resized_features_at(feat, self.edit.size, rc[:, 0], rc[:, 1]).T.contiguous()

    def resume(self, first_features: torch.Tensor) -> None:
        self.take_references(first_features)

    def step(self, first: bool) -> StepOutput:
        edit, cfg = self.edit, self.edit.config
        feat = edit.features()
        if first:
            self.take_references(feat.detach())
            handles_rc = edit.handles_rc.clone()
        else:
            with torch.no_grad():
                handles_rc = self.track(feat.detach())
        dist = torch.linalg.norm(edit.targets_rc - handles_rc, dim=1)
        # Within a pixel the direction means little; below the stop distance, nothing.
        close = dist <= edit.stop_px
        active = dist > min(1.0, edit.stop_px)
        if cfg.handle_stop == "each":
            close, active = close | edit.finished, active & ~edit.given_up
        loss = motion_supervision_loss(feat, edit.size, handles_rc, edit.targets_rc, edit.r1, grid=edit.pixel_grid,
                                       active=active)
        hold = edit.mask_loss(feat)
        if hold is not None:
            loss = loss + hold
        return StepOutput(handles_rc=handles_rc, done=close.all(), loss=loss, features=feat)

    def track(self, feat: torch.Tensor) -> torch.Tensor:
        """Step (2): the handles after tracking, [N, 2] (row, col) on the device."""
        edit = self.edit
        if self.tracker is None:
            return track_points(feat, edit.size, edit.handles_rc, self.refs, edit.r2, edit.config.tracking_distance)
        step = TrackingStep(features=feat, handles=rc_to_xy(edit.handles_rc), start_handles=edit.handles0_xy,
                            reference_features=self.refs, size=edit.size, image=edit.render,
                            start_image=lambda: edit.render(edit.ws0))
        new = xy_to_rc(torch.as_tensor(self.tracker(step), dtype=torch.float32)).to(edit.device)
        if new.shape != edit.handles_rc.shape or not torch.isfinite(new).all():
            raise RuntimeError(f"the tracker returned {list(new.shape)} handles with non-finite values "
                               f"or the wrong shape (expected {list(edit.handles_rc.shape)})")
        H, W = edit.size
        return torch.stack([new[:, 0].clamp(0, H - 1), new[:, 1].clamp(0, W - 1)], 1)
