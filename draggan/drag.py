"""The drag editor: `DragSession` owns one point-based edit of a StyleGAN2 latent.

Pan et al., "Drag Your GAN: Interactive Point-based Manipulation on the Generative Image
Manifold", SIGGRAPH 2023.

One step, in the official code's order: (1) synthesise up to the feature block at the current
latent; (2) track every handle to the pixel of its search window whose feature is nearest to the
handle's feature in the first image (skipped on the first step, where it is the identity); (3) stop
if every handle is close enough to its target, else take one optimiser step on the motion
supervision loss at the tracked handles (plus the mask term). Only the first `optimize_ws` rows of
the W+ latent change. The full image is synthesised only when `render()` is called.

Points are (x, y) image pixels (see `draggan.points`); latents are W+ `[1, num_ws, w_dim]`.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from draggan.features import motion_supervision_loss, pixel_grid, resized_features_at, track_points
from draggan.networks import Generator
from draggan.points import as_points, check_inside, rc_to_xy, xy_to_rc
from draggan.registry import MODELS

log = logging.getLogger(__name__)

REFERENCE_RESOLUTION = 512  # r1 and r2 are given in pixels of an image of this height
PAPER_FEATURE_BLOCK = 5  # the paper's "6th block": 128x128 in generators of 128 px and more
PRESETS = ("recommended", "paper", "official")
METHODS = ("draggan", "freedrag", "stabledrag", "uclt")  # drag methods, see `draggan.methods.make_session`
# The library's default on top of the paper's (`DragConfig.for_generator`, `drag=recommended`), for every generator;
# measured on toy-faces-64 (model card, docs/evaluation.md "Defaults that transfer"):
# - radii in cells of the feature map: r1 = 0.75 and r2 = 3 cells are the paper's 3 and 12 px at 512 px with
#   block 5 (128x128, 4-px cells), and 1.5 and 6 px at 64 px with block 3 (instead of 1 and 2 px);
# - a many-handle edit ends when each handle has reached its target once, and a handle that has not come
#   closer for 30 steps is given up (a single handle keeps the paper's rule: the step limit);
# - the mask term is squared and relative to the first features' RMS (the paper's L1 term has a constant
#   gradient however small the change, which held the handle still on toy-faces-64), and it does not hold
#   the features within one feature cell of the movable region (they depend on what moves).
# - the method: FreeDrag (Ling et al. 2024, `draggan.methods.freedrag`), not DragGAN's tracking: on a toy-faces
#   generator that no setting was chosen on (toy-faces-64-seed1) DragGAN left 0.41 / 0.53 of the red-pixel mouth
#   drag (goal <= 0.4), FreeDrag 0.29 / 0.32; on toy-faces-64 it is nearest on every column of Table 1 and meets
#   the mask goals too. It takes more steps (about 2x the time of a 1-point DragGAN edit on the CPU), and it runs
#   without DragGAN's CUDA graph. `drag_method=draggan` (`method="draggan"`) keeps these settings with DragGAN.
RECOMMENDED: dict = dict(method="freedrag", radius_unit="cells", r1=0.75, r2=3.0, handle_stop="each",
                         handle_patience=30, mask_loss="l2", mask_margin=1.0, small_generator_rule=True)
# `small_generator_rule`: below 128 px (no block 5) these replace the paper's lr and stop distance, where those
# are left at the paper's values: one pixel is 1/64 of the image, so the drag stops on the target's pixel.
# The tracker puts handles on whole pixels, and the pixel nearest a target between pixels is up to
# sqrt(1/2) = 0.707 px from it: a stop distance of 0.5 px could never be met by about a fifth of the targets
# (those drags ran to the step limit, hovering, and ended worse; docs/evaluation.md).
ON_TARGET_PIXEL = 0.71  # px: within half a pixel's diagonal of the target
SMALL_GENERATOR: dict = dict(lr=1e-2, stop_distance=ON_TARGET_PIXEL)


@dataclass
class DragConfig:
    """Every setting of the drag editor; the defaults are the paper's.

    `DragConfig.for_generator(G)` adds the settings the registry gives a generator (toy-faces-64's
    own block, lr and stop rule); `DragConfig.preset("official")` is the official implementation.
    Where a setting cannot apply to a generator literally, `DragSession` adapts it by the rules of
    `adapted_to` and says so in a warning (the paper's block 5 does not exist below 128 px).
    """

    feature_block: int = PAPER_FEATURE_BLOCK  # synthesis block whose output is the feature map (0 = 4x4)
    r1: float = 3.0  # motion supervision radius, in pixels of a 512-px image
    r2: float = 12.0  # tracking search half-width, in pixels of a 512-px image
    min_radius: float | None = 1.0  # scaled radii are never below this (None = the official rounding, 0 below 86 px)
    radius_unit: str = "px512"  # r1, r2 in 'px512' (pixels of a 512-px image: paper, official) or 'cells' (of the feature map)
    tracking_distance: str = "l1"  # 'l1' (paper) or 'l2' (official code)
    lambda_mask: float = 20.0  # weight of the term holding features outside the mask
    mask_loss: str = "l1"  # the hold term: 'l1' (paper, official) or 'l2' (squared, relative to the first features' RMS)
    mask_margin: float = 0.0  # features within this many feature cells of the movable region are not held
    lr: float = 2e-3  # Adam learning rate (paper 2e-3; official GUI 1e-3)
    latent_space: str = "w+"  # 'w+' (each of the first rows free) or 'w' (one shared row)
    optimize_ws: int = 6  # number of leading ws rows optimised; the rest stay at their start
    stop_distance: float = 1.0  # done when every handle is within this many pixels of its target...
    stop_distance_many: float = 2.0  # ...or this many with more than `many_handles` handles
    many_handles: int = 5
    official_stop_rule: bool = False  # use the official max(2, 2h/512) px instead of the two above
    handle_stop: str = "together"  # 'together' (paper): done when every handle is close at one step; 'each': done
    # when every handle has been close at some step (a handle that drifts off again is still pushed back meanwhile)
    small_generator_rule: bool = False  # below 128 px, SMALL_GENERATOR's lr and stop (where left at the paper's values)
    handle_patience: int = 0  # 'each' with several handles: a handle not closer than its best for this many steps is
    # given up (no longer pushed, and counted as finished), so that one stalled handle does not hold the others'
    # edit to the step limit (0 = never)
    official_grid: bool = False  # reproduce the official pixel grid quirk of the motion disk
    max_steps: int = 300  # step limit of `run`
    noise_mode: str = "const"  # noise of the synthesis
    force_fp32: bool = False  # compute every synthesis block in float32, ignoring the generator's num_fp16_res (CUDA)
    divergence_ratio: float = 10.0  # stop (keeping the last good state) when the features' RMS grows this much
    cuda_graph: bool = True  # CUDA: replay each step as one captured graph (the same kernels, launched at once)
    stall_steps: int = 50  # say that the drag stalled after this many steps without progress (see `stall`; 0 = never)
    method: str = "draggan"  # draggan, freedrag, stabledrag or uclt: the session `draggan.methods.make_session` builds
    method_options: dict[str, Any] = field(default_factory=dict)  # the method's own settings (see its options class)

    @staticmethod
    def preset(name: str, generator: "str | Generator | None" = None) -> "DragConfig":
        """'paper' (the defaults), 'official' (the official implementation, exactly) or 'recommended'
        (`for_generator(generator)`: the paper's with the generator's own settings)."""
        if name == "paper":
            return DragConfig()
        if name == "official":
            return DragConfig(tracking_distance="l2", lr=1e-3, min_radius=None, official_stop_rule=True,
                              official_grid=True)
        if name == "recommended":
            return DragConfig.for_generator(generator)
        raise ValueError(f"unknown drag preset {name!r} (expected one of {', '.join(PRESETS)})")

    @staticmethod
    def for_generator(generator: "str | Generator | None") -> "DragConfig":
        """The paper's settings with those that `draggan.registry` gives this generator.

        `generator` is a registered name, or a Generator that `load_generator` made from one (it keeps
        the name as `G.model_name`). Anything else (a path, a URL, an untrained network) has no
        settings of its own and gets the paper's.
        """
        name = getattr(generator, "model_name", None) if isinstance(generator, torch.nn.Module) else generator
        info = MODELS.get(str(name)) if name is not None else None
        return DragConfig(**{**RECOMMENDED, **(info.drag if info is not None else {})})

    def adapted_to(self, G: Generator) -> tuple["DragConfig", list[str]]:
        """This config made concrete for `G`, and what was changed, in words (`DragSession` warns of each).

        Two rules, for settings that cannot apply to `G` literally:
        - The feature block: the paper's block 5 (128x128 from 128 px up) does not exist in a generator
          below 128 px; there the block of half the image size is used (block 3, 32x32, at 64 px: the
          block the landmark measurement chose for toy-faces-64). Any other missing block is an error.
        - The radii: the official rounding (`min_radius=None`) scales r1 = 3 to 0 px below 86 px (r2 = 12
          below 22 px), where the official code has no motion disk; there a radius is 1 px (`min_radius=1`),
          which leaves every radius that rounds to 1 px or more as the official code has it.
        """
        cfg, notes = copy.deepcopy(self), []
        blocks = G.synthesis.block_resolutions
        if cfg.small_generator_rule and len(blocks) <= PAPER_FEATURE_BLOCK:
            paper = DragConfig()
            for key, value in SMALL_GENERATOR.items():
                if getattr(cfg, key) == getattr(paper, key) and value != getattr(paper, key):
                    setattr(cfg, key, value)
                    notes.append(f"{key}={value:g} for a generator below 128 px (the recommended settings' rule)")
        if not 0 <= cfg.feature_block < len(blocks):
            if cfg.feature_block != PAPER_FEATURE_BLOCK:
                raise ValueError(f"feature_block={cfg.feature_block}, but this generator has blocks "
                                 f"0..{len(blocks) - 1} (0 = 4x4)")
            cfg.feature_block = max(len(blocks) - 2, 0)
            res = blocks[cfg.feature_block]
            notes.append(f"the paper's feature block {PAPER_FEATURE_BLOCK} does not exist in this {G.img_height}-px "
                         f"generator (blocks 0..{len(blocks) - 1}); using block {cfg.feature_block} ({res}x{res}, "
                         "half the image size); set feature_block to choose another")
        if cfg.min_radius is None and cfg.radius_unit == "px512":
            zero = [name for name, r in (("r1", cfg.r1), ("r2", cfg.r2)) if cfg.radius_px(r, G.img_height) <= 0]
            if zero:
                cfg.min_radius = 1.0
                notes.append(f"the official rounding scales {' and '.join(zero)} to 0 px at {G.img_height} px, where "
                             "the official code cannot drag; using 1 px (min_radius=1)")
        return cfg, notes

    def radius_px(self, r: float, height: int, feature_resolution: int | None = None) -> float:
        """A radius in image pixels: given at 512 px, scaled to an image of `height` like the official code
        (`radius_unit='px512'`), or given in cells of a `feature_resolution`-high feature map ('cells': a cell
        is height / feature_resolution pixels; not rounded, the disk's test is a strict `<`)."""
        if self.radius_unit == "cells":
            if feature_resolution is None:
                raise ValueError("radius_unit='cells' needs the feature map's resolution")
            scaled = r * height / feature_resolution
        else:
            scaled = round(r / REFERENCE_RESOLUTION * height)
        return scaled if self.min_radius is None else max(scaled, self.min_radius)

    def stop_px(self, num_handles: int, height: int) -> float:
        if self.official_stop_rule:
            return max(2 / REFERENCE_RESOLUTION * height, 2)
        return self.stop_distance_many if num_handles > self.many_handles else self.stop_distance

    def validate(self) -> None:
        """Every setting of its type and within its range (NaN and infinities included), or a one-line ValueError."""
        from draggan.limits import MAX_DRAG_STEPS
        from draggan.networks import NOISE_MODES

        def number(name: str, low: float, high: float = math.inf, *, whole: bool = False,
                   low_open: bool = False, none: bool = False) -> None:
            v = getattr(self, name)
            if v is None and none:
                return
            ok = isinstance(v, int) if whole else isinstance(v, (int, float))
            ok = ok and not isinstance(v, bool) and math.isfinite(v) and (v > low if low_open else v >= low) and v <= high
            if not ok:
                kind = "a whole number" if whole else "a finite number"
                span = f"({low:g}, {high:g}]" if low_open else f"[{low:g}, {high:g}]"
                raise ValueError(f"drag setting {name}={v!r} must be {kind} in {span}")

        number("feature_block", 0, 32, whole=True)
        number("r1", 0, 4096, low_open=True)
        number("r2", 0, 4096, low_open=True)
        number("min_radius", 0, 4096, none=True)
        number("lambda_mask", 0)
        number("mask_margin", 0, 4096)
        number("lr", 0, low_open=True)
        number("optimize_ws", 1, 64, whole=True)
        number("stop_distance", 0, 4096)
        number("stop_distance_many", 0, 4096)
        number("many_handles", 0, 1 << 16, whole=True)
        number("max_steps", 0, MAX_DRAG_STEPS, whole=True)
        number("divergence_ratio", 1, low_open=True)
        number("stall_steps", 0, MAX_DRAG_STEPS, whole=True)
        number("handle_patience", 0, MAX_DRAG_STEPS, whole=True)
        for name in ("official_stop_rule", "official_grid", "force_fp32", "cuda_graph", "small_generator_rule"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"drag setting {name}={getattr(self, name)!r} must be true or false")
        for name, choices in (("tracking_distance", ("l1", "l2")), ("latent_space", ("w", "w+")),
                              ("mask_loss", ("l1", "l2")), ("handle_stop", ("together", "each")),
                              ("radius_unit", ("px512", "cells")),
                              ("noise_mode", NOISE_MODES), ("method", METHODS)):
            if getattr(self, name) not in choices:
                raise ValueError(f"drag setting {name}={getattr(self, name)!r} must be one of {', '.join(choices)}")
        if not isinstance(self.method_options, dict):
            raise ValueError(f"drag setting method_options={self.method_options!r} must be a mapping of the method's settings")


@dataclass
class DragState:
    """What one step did."""

    step: int  # index of the step (0 = first)
    handles: list[tuple[float, float]]  # (x, y) handles after this step's tracking
    loss: float  # the loss at this step (nan when the step was the stop check only)
    distances: list[float]  # handle-to-target distances after tracking, in pixels
    done: bool  # every handle reached its target (no update was made)
    error: str | None = None  # why the session stopped early (a NaN, say)


@dataclass
class DragResult:
    """The outcome of `DragSession.run`."""

    image: torch.Tensor  # [1, C, H, W] final image in [-1, 1] (not clamped)
    ws: torch.Tensor  # [1, num_ws, w_dim] final latent
    handles: list[tuple[float, float]]  # final (x, y) handles
    history: list[DragState] = field(default_factory=list)  # every step of the session
    done: bool = False  # the handles reached their targets
    stalled: str | None = None  # why the drag had stopped making progress at its end, and what to try (see `stall`)


@dataclass(frozen=True)
class TrackingStep:
    """What a `PointTracker` is given at a step of a `DragSession` (every step but the first)."""

    features: torch.Tensor  # [1, C, h, w] the feature block at the current latent (detached)
    handles: torch.Tensor  # [N, 2] (x, y) the handles before this step's tracking, on the generator's device
    start_handles: torch.Tensor  # [N, 2] (x, y) where the handles were placed (the queries of the first image; host)
    reference_features: torch.Tensor  # [N, C] the handles' features in the first image (resized to the image)
    size: tuple[int, int]  # (H, W) of the image
    image: Callable[[], torch.Tensor]  # renders the full image at the current latent, [1, C, H, W] in [-1, 1]
    start_image: Callable[[], torch.Tensor]  # renders the first image of the session


class PointTracker(Protocol):
    """Replaces the point tracking, step (2), of a `DragSession` (the paper's ablation puts other trackers there).

    Called once per step after the first, with a `TrackingStep`; returns where the handles are now,
    [N, 2] (x, y) pixels (a tensor or an array), in the order of `step.handles`. The session clamps them to
    the image and refuses a wrong shape or non-finite values. A tracker may keep state across the steps of
    one session (the frames so far, say), so each session needs a fresh one.
    """

    def __call__(self, step: TrackingStep) -> torch.Tensor | np.ndarray: ...


STALL_MIN_DECREASE = 0.01  # a loss lower by less than this fraction is no decrease (Adam's steps wobble it)


def stall(history: Sequence[DragState], steps: int) -> str | None:
    """Why a drag has stalled, with what to try, or None while it makes progress.

    Stalled: for the last `steps` steps no handle moved and the loss never fell (by `STALL_MIN_DECREASE` of
    it) below its value `steps` steps earlier, and the drag is not done. A pure function of the history, so the
    command line, the editor and the evaluation read the same verdict. `steps` = 0 never reports a stall.
    """
    if steps <= 0 or len(history) <= steps or history[-1].done:
        return None
    window = history[-steps - 1:]
    if any(s.handles != window[0].handles for s in window[1:]):
        return None
    start = window[0].loss
    later = [s.loss for s in window[1:] if s.loss is not None and math.isfinite(s.loss)]
    if start is None or not math.isfinite(start) or not later or min(later) < start * (1 - STALL_MIN_DECREASE):
        return None
    return (f"stalled: no handle has moved and the loss has not fallen for {steps} steps "
            f"({max(history[-1].distances):.1f} px left); try a larger mask around the handles and targets "
            "(or none), a larger learning rate, or nearer targets")


class DragSession:
    """One drag edit: the latent, the points, the optimiser, and the history of every step.

    `DragSession(...)` builds the session of `config.method`: DragGAN's (this class) for 'draggan', the
    method's subclass (`draggan.methods`) for the others, with the same arguments and interface."""

    def __new__(cls, G=None, ws=None, handles=None, targets=None, mask=None, config=None, tracker=None):
        if cls is DragSession and config is not None and config.method != "draggan":
            from draggan.methods import session_class

            if tracker is not None:
                raise ValueError(f"drag method {config.method!r} localises its handles itself; an in-loop tracker "
                                 "applies to method draggan only")
            cls = session_class(config.method)
        return super().__new__(cls)

    def __init__(self, G: Generator, ws: torch.Tensor, handles: Sequence[Sequence[float]],
                 targets: Sequence[Sequence[float]], mask: np.ndarray | torch.Tensor | None = None,
                 config: DragConfig | None = None,
                 tracker: PointTracker | None = None):
        """`tracker`, if given, replaces the point tracking (step 2), see `PointTracker`; the evaluation uses
        it to put other trackers inside the loop, as in the paper's ablation. It is not saved by `state_dict`."""
        self.G = G
        self.tracker = tracker
        config = config if config is not None else DragConfig()
        config.validate()
        if type(self) is DragSession and config.method != "draggan":  # DragSession.__init__ called on its own
            raise ValueError(f"drag method {config.method!r} is not DragGAN's step: build its session with "
                             "DragSession(...) or draggan.methods.make_session(...)")
        self.config, self.adaptations = config.adapted_to(G)  # adaptations: what changed for G, in words
        for note in self.adaptations:
            log.warning("drag settings: %s", note)
        cfg = self.config
        self.size = (G.img_height, G.img_width)
        self.device = next(G.parameters()).device
        ws = torch.as_tensor(ws)
        if ws.ndim != 3 or ws.shape[0] != 1 or tuple(ws.shape[1:]) != (G.num_ws, G.w_dim):
            raise ValueError(f"ws must have shape [1, {G.num_ws}, {G.w_dim}] (W+ of this generator), "
                             f"got {list(ws.shape)}")
        if not torch.isfinite(ws).all():
            raise ValueError("ws contains NaN or infinite values")
        if cfg.optimize_ws > G.num_ws:
            raise ValueError(f"optimize_ws={cfg.optimize_ws} exceeds num_ws={G.num_ws}")
        h = as_points(handles, "handles")
        t = as_points(targets, "targets")
        if len(h) == 0 or len(h) != len(t):
            raise ValueError(f"need as many targets as handles, and at least one: got {len(h)} handles, {len(t)} targets")
        check_inside(h, *self.size, "handles")
        check_inside(t, *self.size, "targets")
        self.mask = self._check_mask(mask)
        self._fixed = None if self.mask is None else self._fixed_region()
        self.ws0 = ws.detach().to(self.device, torch.float32).clone()
        self.handles0_xy = h
        self.targets_xy = t
        self.handles_rc = xy_to_rc(h).to(self.device, torch.float32)
        self.targets_rc = xy_to_rc(t).to(self.device, torch.float32)
        self._handles_xy = [tuple(p) for p in h.to(torch.float32).tolist()]
        feature_resolution = G.synthesis.block_resolutions[cfg.feature_block]
        self.r1 = cfg.radius_px(cfg.r1, self.size[0], feature_resolution)
        self.r2 = int(cfg.radius_px(cfg.r2, self.size[0], feature_resolution))
        self.stop_px = cfg.stop_px(len(h), self.size[0])
        if self.r1 <= 0 or self.r2 <= 0:
            raise ValueError(f"r1/r2 scale to {self.r1}/{self.r2} px at {self.size[0]} px; "
                             "set min_radius=1 or larger radii")
        self.pixel_grid = pixel_grid(self.size, self.device, cfg.official_grid)
        rows = cfg.optimize_ws if cfg.latent_space == "w+" else 1
        self.free = torch.nn.Parameter(self.ws0[:, :rows].clone())
        # On CUDA one fused kernel, with its step counter on the device (no host reads).
        self.optimizer = torch.optim.Adam([self.free], lr=cfg.lr, fused=True if self.device.type == "cuda" else None)
        self.history: list[DragState] = []
        self.snapshots: list[dict] = []  # per step: latent and optimiser state after the step
        self.refs: torch.Tensor | None = None  # [N, C] handle features of the first image
        self.feat0: torch.Tensor | None = None  # features of the first image (mask term only)
        self.feat0_rms: torch.Tensor | None = None  # their RMS (the 'l2' mask term's unit)
        self.feature_scale0 = math.inf  # RMS of the first image's features (the divergence check)
        self._finished = torch.zeros(len(h), dtype=torch.bool, device=self.device)  # see `_update_finished`
        self._given_up = torch.zeros(len(h), dtype=torch.bool, device=self.device)
        self._update_finished(None)
        self.done = False
        self._graph: torch.cuda.CUDAGraph | None = None  # the captured step (CUDA), see `_replay`
        self._graph_outputs: tuple[torch.Tensor, torch.Tensor] | None = None
        self._graph_failed = False

    # ---------------------------------------------------------------------------------------

    def _check_mask(self, mask) -> torch.Tensor | None:
        if mask is None:
            return None
        m = torch.as_tensor(np.asarray(mask))
        if tuple(m.shape) != self.size:
            raise ValueError(f"mask must have the image's shape {list(self.size)} (H, W), got {list(m.shape)}")
        m = m.to(torch.bool)
        if not m.any():
            raise ValueError("the mask allows nothing to move (it is all False)")
        return m.to(self.device)

    @property
    def ws(self) -> torch.Tensor:
        """The current W+ latent [1, num_ws, w_dim] (only the first optimize_ws rows change)."""
        return self._ws_from(self.free)

    def ws_at(self, step: int) -> torch.Tensor:
        """The W+ latent right after `step` (-1 = the start), without changing the session."""
        if not -1 <= step < len(self.snapshots):
            raise ValueError(f"step must be in [-1, {len(self.snapshots) - 1}], got {step}")
        return self.ws0.clone() if step == -1 else self._ws_from(self.snapshots[step]["free"])

    def _ws_from(self, free: torch.Tensor) -> torch.Tensor:
        """The W+ latent whose optimised rows are `free` (one row in W, `optimize_ws` rows in W+)."""
        if self.config.latent_space == "w":
            free = free.expand(-1, self.config.optimize_ws, -1)
        return torch.cat([free, self.ws0[:, self.config.optimize_ws:]], dim=1)

    @property
    def handles(self) -> list[tuple[float, float]]:
        """The current (x, y) handles (kept on the host; reading them costs no synchronisation)."""
        return list(self._handles_xy)

    def _features(self, ws: torch.Tensor | None = None) -> torch.Tensor:
        return self.G.synthesis.features(self.ws if ws is None else ws, up_to=self.config.feature_block,
                                         noise_mode=self.config.noise_mode, force_fp32=self.config.force_fp32)[-1]

    def render(self, ws: torch.Tensor | None = None) -> torch.Tensor:
        """The full image at the current latent (or at `ws`, e.g. `ws_at(k)`), [1, C, H, W] in about [-1, 1]."""
        with torch.no_grad():
            return self.G.synthesis((self.ws if ws is None else ws).detach(), noise_mode=self.config.noise_mode,
                                    force_fp32=self.config.force_fp32)

    def distances(self) -> list[float]:
        return torch.linalg.norm(self.targets_rc - self.handles_rc, dim=1).tolist()

    # ---------------------------------------------------------------------------------------

    def step(self) -> DragState:
        """One step: synthesise to the feature block, track, and (unless done) one optimiser update.

        Every tensor of the step stays on the generator's device, and the step reads values back to
        the host once (`_to_host`: the stop rule, the loss, the handles), after the backward pass.
        On CUDA the work up to that read is replayed as one CUDA graph from the second step on (the
        same kernels, without the cost of launching a thousand of them from Python).
        """
        if self.done:
            raise RuntimeError("the session is done; roll back to an earlier step to continue")
        cfg = self.config
        first = self.refs is None
        if first or not self._use_graph():
            self._graph = None
            self.optimizer.zero_grad(set_to_none=True)
            packet, handles_rc = self._forward_backward(first)
        else:
            packet, handles_rc = self._replay()
        values = self._to_host(packet)
        self.handles_rc.copy_(handles_rc)
        n = len(self.handles_rc)
        done, loss_value, scale_value = values[0] > 0, values[1], values[2]
        distances, hrc = values[3:3 + n], values[3 + n:3 + 3 * n]
        self._handles_xy = [(hrc[2 * i + 1], hrc[2 * i]) for i in range(n)]
        if first:
            self.feature_scale0 = scale_value
        error = None
        if not math.isfinite(scale_value) or scale_value > cfg.divergence_ratio * self.feature_scale0:
            return self._diverged(scale_value)
        if done:
            loss_value = float("nan")
        elif not math.isfinite(loss_value):
            error = f"the loss became {loss_value} at step {len(self.history)}; the last good state is kept"
            done = True
        else:
            self.optimizer.step()
        self.done = done
        state = DragState(step=len(self.history), handles=list(self._handles_xy), loss=loss_value,
                          distances=distances, done=done, error=error)
        self.history.append(state)
        self.snapshots.append(self._snapshot())
        self._update_finished(self.history[-1:])
        return state

    def _update_finished(self, states: Sequence[DragState] | None = None) -> None:
        """`handle_stop='each'`: mark the handles that came within the stop distance in `states`, and those given
        up for `handle_patience` (None: start again from the whole history, as after a rollback). A function of
        the history, kept in device tensors that the step reads (updated in place: a captured step reads them)."""
        n, patience = len(self.handles_rc), self.config.handle_patience if len(self.handles_rc) > 1 else 0
        if states is None:
            self._reached_host, self._given_up_host = [False] * n, [False] * n
            self._best = [(math.inf, 0)] * n  # per handle: (best distance, its step)
            states = self.history
            changed = True
        else:
            changed = False
        if self.config.handle_stop != "each":
            return
        before = (self._reached_host, self._given_up_host)
        for s in states:
            self._best = [(d, s.step) if d < b - 1e-6 else (b, k) for (b, k), d in zip(self._best, s.distances)]
            self._reached_host = [f or d <= self.stop_px for f, d in zip(self._reached_host, s.distances)]
            self._given_up_host = [g or (patience > 0 and not r and s.step - k >= patience)
                                   for g, r, (_, k) in zip(self._given_up_host, self._reached_host, self._best)]
        if changed or (self._reached_host, self._given_up_host) != before:  # rare: no transfer on most steps
            finished = [r or g for r, g in zip(self._reached_host, self._given_up_host)]
            self._finished.copy_(torch.tensor(finished, device=self.device))
            self._given_up.copy_(torch.tensor(self._given_up_host, device=self.device))

    def _forward_backward(self, first: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Synthesis, tracking, loss and its backward into `free.grad`; changes no other state of the
        session after the first step (so that it can be captured and replayed). Returns the packet
        for the host ([done, loss, feature scale, distances, handles]) and the tracked handles."""
        feat = self._features()
        if first:
            self._take_references(feat.detach(), self.handles_rc)
            handles_rc = self.handles_rc.clone()
        else:
            with torch.no_grad():
                handles_rc = self._track(feat.detach())
        dist = torch.linalg.norm(self.targets_rc - handles_rc, dim=1)
        # Within a pixel the direction means little; below the stop distance, nothing.
        close = dist <= self.stop_px
        active = dist > min(1.0, self.stop_px)
        if self.config.handle_stop == "each":
            close, active = close | self._finished, active & ~self._given_up
        loss = self._loss(feat, handles_rc, active)
        loss.backward()
        scale = _feature_scale(feat.detach())
        packet = torch.cat([close.all().to(torch.float32)[None], loss.detach().to(torch.float32)[None],
                            scale[None], dist.to(torch.float32), handles_rc.reshape(-1)])
        return packet, handles_rc

    def _use_graph(self) -> bool:
        return (self.config.cuda_graph and self.device.type == "cuda" and self.tracker is None
                and not self._graph_failed)

    def _replay(self) -> tuple[torch.Tensor, torch.Tensor]:
        """`_forward_backward` as a CUDA graph: captured once (after two warm-up runs on a side
        stream, as PyTorch asks), then replayed; it reads the latent, handles and references from
        tensors that the session only ever updates in place."""
        if self._graph is None:
            try:
                side = torch.cuda.Stream(self.device)
                side.wait_stream(torch.cuda.current_stream(self.device))
                with torch.cuda.stream(side):
                    for _ in range(2):
                        self.optimizer.zero_grad(set_to_none=True)
                        self._forward_backward(first=False)
                torch.cuda.current_stream(self.device).wait_stream(side)
                self.optimizer.zero_grad(set_to_none=True)  # the capture's backward then owns free.grad
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph):
                    self._graph_outputs = self._forward_backward(first=False)
                self._graph = graph
            except RuntimeError as e:  # an operation that cannot be captured: the same step, launched one by one
                log.warning("drag step: CUDA graph capture failed (%s); running the step without it", e)
                self._graph_failed, self._graph = True, None
                self.optimizer.zero_grad(set_to_none=True)
                return self._forward_backward(first=False)
        self._graph.replay()
        return self._graph_outputs

    def _to_host(self, packet: torch.Tensor) -> list[float]:
        """The one host-device synchronisation of a step (a test replaces it to count syncs)."""
        return packet.tolist()

    def _track(self, feat: torch.Tensor) -> torch.Tensor:
        """Step (2): the handles after tracking, [N, 2] (row, col) on the device."""
        if self.tracker is None:
            return track_points(feat, self.size, self.handles_rc, self.refs, self.r2, self.config.tracking_distance)
        step = TrackingStep(features=feat, handles=rc_to_xy(self.handles_rc), start_handles=self.handles0_xy,
                            reference_features=self.refs, size=self.size, image=self.render,
                            start_image=lambda: self.render(self.ws0))
        new = xy_to_rc(torch.as_tensor(self.tracker(step), dtype=torch.float32)).to(self.device)
        if new.shape != self.handles_rc.shape or not torch.isfinite(new).all():
            raise RuntimeError(f"the tracker returned {list(new.shape)} handles with non-finite values "
                               f"or the wrong shape (expected {list(self.handles_rc.shape)})")
        H, W = self.size
        return torch.stack([new[:, 0].clamp(0, H - 1), new[:, 1].clamp(0, W - 1)], 1)

    def _diverged(self, scale: float) -> DragState:
        """The features left a sane range (or became non-finite): go back to the state before the
        update that did it, and stop there with an error."""
        step = len(self.history)
        good = step - 2  # the state after step `good` is the last one that made sane features
        self._restore(good)
        del self.history[good + 1:]
        del self.snapshots[good + 1:]
        error = (f"the drag diverged at step {step - 1} (feature scale {scale:.3g}, "
                 f"{self.config.divergence_ratio:g}x above the start's limit {self.feature_scale0:.3g}); "
                 f"the last good state is kept: try a smaller drag.lr")
        self.done = True
        state = DragState(step=len(self.history), handles=self.handles, loss=float("nan"),
                          distances=self.distances(), done=True, error=error)
        self.history.append(state)
        self.snapshots.append(self._snapshot())
        return state

    def _loss(self, feat: torch.Tensor, handles_rc: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
        """Motion supervision of the `active` handles (at `handles_rc`), plus the mask term."""
        cfg = self.config
        motion = motion_supervision_loss(feat, self.size, handles_rc, self.targets_rc, self.r1,
                                         grid=self.pixel_grid, active=active)
        if self.mask is None:
            return motion
        resize = torch.nn.functional.interpolate
        fixed = self._fixed
        diff = resize(feat - self.feat0, list(self.size), mode="bilinear") * fixed
        if cfg.mask_loss == "l1":
            hold = diff.abs().mean()
        else:
            hold = (diff / self.feat0_rms).square().mean() * self.feat0_rms
        return motion + cfg.lambda_mask * hold

    def _fixed_region(self) -> torch.Tensor:
        """[H, W] float: 1 where the mask term holds the features (outside the movable region, and more
        than `mask_margin` feature cells away from it), 0 elsewhere."""
        free = self.mask
        feat_width = self.G.synthesis.block_resolutions[self.config.feature_block]
        px = self.config.mask_margin * self.size[1] / feat_width  # the margin in image pixels
        if px > 0:
            k = int(math.ceil(px))
            off = torch.arange(-k, k + 1, device=self.device, dtype=torch.float32)
            disc = ((off[:, None] ** 2 + off[None, :] ** 2) <= px ** 2).to(torch.float32)[None, None]
            free = torch.nn.functional.conv2d(free.to(torch.float32)[None, None], disc, padding=k)[0, 0] > 0
        return (~free).to(torch.float32)

    # ---------------------------------------------------------------------------------------

    def _snapshot(self) -> dict:
        return _map_snapshot({"free": self.free.detach(), "handles_rc": self.handles_rc,
                              "adam": self.optimizer.state.get(self.free, {})}, torch.Tensor.clone)

    def _restore(self, index: int) -> None:
        if index < 0:
            snap = {"free": self.ws0[:, : self.free.shape[1]].clone(),
                    "handles_rc": xy_to_rc(self.handles0_xy).to(self.device, torch.float32),
                    "adam": {}}
        else:
            snap = self.snapshots[index]
        with torch.no_grad():
            self.free.copy_(snap["free"])
        self.handles_rc.copy_(snap["handles_rc"])  # in place: a captured step reads this tensor
        self._handles_xy = [tuple(p) for p in rc_to_xy(self.handles_rc).tolist()]
        self.optimizer.state[self.free] = _map_tensors(snap["adam"], torch.Tensor.clone)
        if not snap["adam"]:
            self.optimizer.state.pop(self.free, None)

    def rollback(self, step: int) -> None:
        """Return to the state right after `step` (-1 = the start); later steps are forgotten."""
        if not -1 <= step < len(self.history):
            raise ValueError(f"step must be in [-1, {len(self.history) - 1}], got {step}")
        self._restore(step)
        del self.history[step + 1:]
        del self.snapshots[step + 1:]
        if step == -1:
            self.refs = None
            self.feat0 = None
        self.done = bool(self.history and self.history[-1].done and self.history[-1].error is None)
        self._update_finished(None)

    def run(self, max_steps: int | None = None, callback: Callable[[DragState, "DragSession"], None] | None = None,
            progress: bool = False) -> DragResult:
        """Step until done or `max_steps` (default: config.max_steps) more steps; render the result. With
        `progress`, a progress bar shows the loss, the largest distance left and STALLED (see `stall`)."""
        limit = self.config.max_steps if max_steps is None else max_steps
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=limit, desc="drag", unit="step")
        for _ in range(limit):
            if self.done:
                break
            state = self.step()
            if bar is not None:
                stalled = stall(self.history, self.config.stall_steps)
                bar.set_postfix(loss=f"{state.loss:.4f}", max_dist=f"{max(state.distances):.2f}px",
                                **({"status": "STALLED"} if stalled else {}))
                bar.update(1)
            if callback is not None:
                callback(state, self)
        if bar is not None:
            bar.close()
        stalled = stall(self.history, self.config.stall_steps)
        if stalled and progress:
            log.warning("drag %s", stalled)
        return DragResult(image=self.render(), ws=self.ws.detach().clone(), handles=self.handles,
                          history=list(self.history), done=self.done, stalled=stalled)

    def state_dict(self) -> dict:
        """Everything needed to resume: config, points, mask, start latent, per-step snapshots."""
        return {"config": dataclasses.asdict(self.config), "handles": self.handles0_xy.tolist(),
                "targets": self.targets_xy.tolist(), "ws0": self.ws0.cpu(),
                "mask": None if self.mask is None else self.mask.cpu(),
                "history": [dataclasses.asdict(s) for s in self.history],
                "snapshots": [_map_snapshot(s, torch.Tensor.cpu) for s in self.snapshots]}

    @classmethod
    def from_state_dict(cls, G: Generator, state: dict) -> "DragSession":
        """Rebuild a session saved by `state_dict`, at its last step."""
        config = DragConfig(**state["config"])
        session = cls(G, state["ws0"], state["handles"], state["targets"], mask=state["mask"], config=config)
        session.history = [DragState(**h) for h in state["history"]]
        session.snapshots = [_map_snapshot(s, lambda t: t.to(session.device)) for s in state["snapshots"]]
        if session.history:
            session.rollback(len(session.history) - 1)
            session._first_step_features()
        return session

    def _first_step_features(self) -> None:
        """Recompute what the first step keeps of the first image (deterministic from ws0): the handles'
        reference features, the mask term's features and the divergence check's scale."""
        with torch.no_grad():
            feat = self._features(self.ws0)
        self._take_references(feat, xy_to_rc(self.handles0_xy).to(self.device, torch.float32))
        self.feature_scale0 = float(_feature_scale(feat))

    def _take_references(self, feat: torch.Tensor, handles_rc: torch.Tensor) -> None:
        """Keep the first image's features at the handles `handles_rc` (and all of them for the mask term)."""
        rc = handles_rc.round().to(torch.int64)
        self.refs = resized_features_at(feat, self.size, rc[:, 0], rc[:, 1]).T.contiguous()
        self._hold(feat)

    def _hold(self, feat: torch.Tensor) -> None:
        """Keep the first image's features for the mask term (every method's), with their RMS (the 'l2'
        term's unit); nothing without a mask."""
        self.feat0 = feat if self.mask is not None else None
        self.feat0_rms = _feature_scale(feat) if self.mask is not None else None


def _feature_scale(feat: torch.Tensor) -> torch.Tensor:
    """The RMS of a feature map, on its device: the divergence check's measure."""
    return feat.to(torch.float32).square().mean().sqrt()


def _map_snapshot(snapshot: dict, fn: Callable[[torch.Tensor], torch.Tensor]) -> dict:
    """A step's snapshot (latent rows, handles, Adam state, and a drag method's own state: a flat dict of
    tensors and numbers) with `fn` applied to each of its tensors (a copy, a move to another device)."""
    out = {"free": fn(snapshot["free"]), "handles_rc": fn(snapshot["handles_rc"]),
           "adam": _map_tensors(snapshot["adam"], fn)}
    if "method" in snapshot:
        out["method"] = _map_tensors(snapshot["method"], fn)
    return out


def _map_tensors(state: dict, fn: Callable[[torch.Tensor], torch.Tensor]) -> dict:
    """`state` (an optimiser's state of one parameter) with `fn` applied to its tensors; other values as they are."""
    return {k: (fn(v) if torch.is_tensor(v) else v) for k, v in state.items()}
