"""`DragSession`: one point-based edit of a StyleGAN2 latent, whatever the drag method.

Pan et al., "Drag Your GAN: Interactive Point-based Manipulation on the Generative Image Manifold", SIGGRAPH
2023, and the methods that followed it (`draggan.methods`). The session owns what every method shares: the latent
rows it optimises and their Adam optimiser, the points and the mask term, the history of every step with a
snapshot after each (latent, handles, optimiser and the method's own state), rollback and preview of any step,
the stop rule, the divergence check, the stall report, saving and resuming (`state_dict`), and, on CUDA, the
replay of a capture-safe step as one graph (`draggan.step_graph`). The method (`config.method`) holds only its own
math and state: each step it localises the handles and returns the loss (`draggan.methods.base.StepOutput`).

Points are (x, y) image pixels (see `draggan.points`); latents are W+ `[1, num_ws, w_dim]`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from draggan.features import feature_rms, pixel_grid
from draggan.mask_term import MaskTerm
from draggan.methods.base import DragMethod, StepOutput, method_options
from draggan.methods.registry import get_method
from draggan.networks import Generator
from draggan.point_tracker import PointTracker
from draggan.points import as_points, check_inside, rc_to_xy, xy_to_rc
from draggan.settings import DragConfig, resolve_drag, settings_record, with_sources
from draggan.stall import stall
from draggan.step_graph import CapturedStep, CudaGraphEngine
from draggan.threads import synthesis_macs, threads_for

log = logging.getLogger(__name__)


@dataclass
class DragState:
    """What one step did."""

    step: int  # index of the step (0 = first)
    handles: list[tuple[float, float]]  # (x, y) handles after this step's localisation
    loss: float  # the loss at this step (nan when the step was the stop check only)
    distances: list[float]  # handle-to-target distances after localisation, in pixels
    done: bool  # every handle reached its target (no update was made)
    error: str | None = None  # why the session stopped early (a NaN, say)
    extras: dict[str, list[float]] = field(default_factory=dict)  # the method's named values of this step


@dataclass
class DragResult:
    """The outcome of `DragSession.run`."""

    image: torch.Tensor  # [1, C, H, W] final image in [-1, 1] (not clamped)
    ws: torch.Tensor  # [1, num_ws, w_dim] final latent
    handles: list[tuple[float, float]]  # final (x, y) handles
    history: list[DragState] = field(default_factory=list)  # every step of the session
    done: bool = False  # the handles reached their targets
    stalled: str | None = None  # why the drag had stopped making progress at its end, and what to try (see `stall`)


class DragSession:
    """One drag edit: the latent, the points, the optimiser, the method, and the history of every step.

    `config` (default: the library's, `DragConfig.for_generator(G)`) chooses the method (`config.method`: a
    registered name or 'module:Class') and every setting; `tracker` (DragGAN's method only) replaces its point
    tracking, see `PointTracker`; the evaluation uses it to put other trackers inside the loop, as in the paper's
    ablation. It is not saved by `state_dict`.
    """

    def __init__(self, G: Generator, ws: torch.Tensor, handles: Sequence[Sequence[float]],
                 targets: Sequence[Sequence[float]], mask: np.ndarray | torch.Tensor | None = None,
                 config: DragConfig | None = None, tracker: PointTracker | None = None, *,
                 allow_import: bool = True):
        """`allow_import=False` (a session from an untrusted file) accepts only registered methods."""
        self.G = G
        config = config if config is not None else resolve_drag(G)
        config.validate(allow_import=allow_import)
        method_cls = get_method(config.method, allow_import=allow_import)
        self.config, self.adaptations = config.adapted_to(G)  # adaptations: what changed for G, in words
        for note in self.adaptations:
            log.warning("drag settings: %s", note)
        self.settings = settings_record(config, G)  # every setting with its source (drag_config.yaml)
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
        feature_resolution = G.synthesis.block_resolutions[cfg.feature_block]
        self.r1 = cfg.radius_px(cfg.r1, self.size[0], feature_resolution)
        self.r2 = int(cfg.radius_px(cfg.r2, self.size[0], feature_resolution))
        if self.r1 <= 0 or self.r2 <= 0:
            raise ValueError(f"r1/r2 scale to {self.r1}/{self.r2} px at {self.size[0]} px; "
                             "set min_radius=1 or larger radii")
        limit = max(self.size) / 2  # a search window or motion disk no larger than the image (the resized map)
        if self.r1 > limit or self.r2 > limit:
            raise ValueError(f"r1/r2 scale to {self.r1:g}/{self.r2} px, more than half this {self.size[0]}x{self.size[1]} "
                             f"image ({limit:g} px): give radii that fit the feature map")
        self.mask = self._check_mask(mask)
        self.mask_term = None if self.mask is None else MaskTerm(
            self.mask, self.size, feature_resolution, loss=cfg.mask_loss, weight=cfg.lambda_mask, margin=cfg.mask_margin)
        self.ws0 = ws.detach().to(self.device, torch.float32).clone()
        self.handles0_xy = h
        self.targets_xy = t
        self.handles_rc = xy_to_rc(h).to(self.device, torch.float32)  # updated in place (a captured step reads it)
        self.handles0_rc = self.handles_rc.clone()
        self.targets_rc = xy_to_rc(t).to(self.device, torch.float32)
        self._handles_xy = [tuple(p) for p in h.to(torch.float32).tolist()]
        self.stop_px = cfg.stop_px(len(h), self.size[0])
        self.pixel_grid = pixel_grid(self.size, self.device, cfg.official_grid)
        rows = cfg.optimize_ws if cfg.latent_space == "w+" else 1
        self.free = torch.nn.Parameter(self.ws0[:, :rows].clone())
        # On CUDA one fused kernel, with its step counter on the device (no host reads).
        self.optimizer = torch.optim.Adam([self.free], lr=cfg.lr, fused=True if self.device.type == "cuda" else None)
        self.history: list[DragState] = []
        self.snapshots: list[dict] = []  # per step: latent, handles, optimiser and method state after the step
        self.feature_scale0 = math.inf  # RMS of the first image's features (the divergence check)
        self.finished = torch.zeros(len(h), dtype=torch.bool, device=self.device)  # see `_update_finished`
        self.given_up = torch.zeros(len(h), dtype=torch.bool, device=self.device)
        self._update_finished(None)
        self.done = False
        self._begun = False  # the first step has been taken (or restored from a snapshot)
        self._continuable = True  # False: loaded without the method's state, see `_restore`
        self._runner: CapturedStep | None = None  # the captured step (CUDA), see `_capturable`
        self._graph_failed = False
        self._step_has_loss = True
        self.method: DragMethod = method_cls(self, method_options(method_cls, cfg.method_options), tracker=tracker)

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
    def tracker(self) -> PointTracker | None:
        return self.method.tracker

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

    def features(self, ws: torch.Tensor | None = None) -> torch.Tensor:
        """The feature map of `config.feature_block` at the current latent (or `ws`), [1, C, h, w]."""
        return self.G.synthesis.features(self.ws if ws is None else ws, up_to=self.config.feature_block,
                                         noise_mode=self.config.noise_mode, force_fp32=self.config.force_fp32)[-1]

    def mask_loss(self, feat: torch.Tensor) -> torch.Tensor | None:
        """The mask term of `feat` (lambda times the hold term, 0-d), or None without a mask; the first call of a
        session (its first step) keeps `feat` as the features to hold."""
        if self.mask_term is None:
            return None
        if self.mask_term.feat0 is None:
            self.mask_term.hold(feat.detach())
        return self.mask_term.term(feat)

    def render(self, ws: torch.Tensor | None = None) -> torch.Tensor:
        """The full image at the current latent (or at `ws`, e.g. `ws_at(k)`), [1, C, H, W] in about [-1, 1]."""
        with torch.no_grad():
            return self.G.synthesis((self.ws if ws is None else ws).detach(), noise_mode=self.config.noise_mode,
                                    force_fp32=self.config.force_fp32)

    def distances(self) -> list[float]:
        return torch.linalg.norm(self.targets_rc - self.handles_rc, dim=1).tolist()

    # ---------------------------------------------------------------------------------------

    def step(self) -> DragState:
        """One step: the method localises the handles and computes its loss, then (unless done) one optimiser
        update.

        Every tensor of the step stays on the generator's device, and the step reads values back to the host
        once (`_to_host`: the stop rule, the loss, the handles, the method's extras), after the backward pass.
        On CUDA a capture-safe method's step is replayed as one CUDA graph from the second step on.
        """
        if self.done:
            raise RuntimeError("the session is done; roll back to an earlier step to continue")
        if not self._continuable:
            raise RuntimeError(f"this {self.config.method} session was loaded from disk without its method state "
                               "(templates, tracker); start a new segment with new points from its latent")
        cfg = self.config
        first = not self._begun
        if first or not self._capturable():
            self._runner = None
            self.optimizer.zero_grad(set_to_none=True)
            packet, handles_rc, extras = self._forward_backward(first)
        else:
            packet, handles_rc, extras = self._captured()()
        values = self._to_host(packet)
        self._begun = True
        self.handles_rc.copy_(handles_rc)
        n = len(self.handles_rc)
        done, loss_value, scale_value = values[0] > 0, values[1], values[2]
        distances, hrc = values[3:3 + n], values[3 + n:3 + 3 * n]
        self._handles_xy = [(hrc[2 * i + 1], hrc[2 * i]) for i in range(n)]
        extra_values, offset = {}, 3 + 3 * n
        for name, size in extras:
            extra_values[name] = values[offset:offset + size]
            offset += size
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
        elif self._step_has_loss:
            self.optimizer.step()
        self.done = done
        state = DragState(step=len(self.history), handles=list(self._handles_xy), loss=loss_value,
                          distances=distances, done=done, error=error, extras=extra_values)
        self.history.append(state)
        self.snapshots.append(self._snapshot())
        self._update_finished(self.history[-1:])
        return state

    def _forward_backward(self, first: bool) -> tuple[torch.Tensor, torch.Tensor, list[tuple[str, int]]]:
        """The method's step and its backward into `free.grad`; changes no state of the session but the method's
        (so that it can be captured and replayed). Returns the packet for the host ([done, loss, feature scale,
        distances, handles, the method's extras]), the handles, and the extras' names and sizes."""
        out: StepOutput = self.method.step(first)
        handles_rc = out.handles_rc
        self._step_has_loss = out.loss is not None  # a method that sets the latent itself (no update)
        if out.loss is not None:
            out.loss.backward()
            loss = out.loss.detach().to(torch.float32)[None]
        else:
            loss = torch.full((1,), math.nan, device=self.device)
        scale = feature_rms(out.features.detach()) if out.features is not None else torch.zeros((), device=self.device)
        dist = torch.linalg.norm(self.targets_rc - handles_rc, dim=1)
        extras = [(name, value.numel()) for name, value in out.extras.items()]
        packet = torch.cat([out.done.to(torch.float32)[None], loss, scale[None].to(torch.float32), dist.to(torch.float32),
                            handles_rc.reshape(-1)] + [v.detach().to(torch.float32).reshape(-1) for v in out.extras.values()])
        return packet, handles_rc, extras

    @property
    def captured(self) -> bool:
        """Whether the step now replays as a captured CUDA graph (CUDA, a capture-safe method, after the first step)."""
        return self._runner is not None and self._runner.graph is not None and not self._runner.failed

    @property
    def graphed(self) -> bool:
        """Whether the steps after the first run as a captured graph (then a method's step must run the same
        operations every step; eagerly on the CPU it may skip work that a step would discard)."""
        return self._capturable()

    def _capturable(self) -> bool:
        return (self.config.cuda_graph and self.device.type == "cuda" and self.method.capture_safe
                and not self._graph_failed)

    def _captured(self) -> CapturedStep:
        """The runner that replays this session's step as a CUDA graph (made on the first step it serves)."""
        if self._runner is None:
            self._runner = CapturedStep(lambda: self._forward_backward(False), save=self._save_step_state,
                                        restore=self._restore_step_state,
                                        zero_grad=lambda: self.optimizer.zero_grad(set_to_none=True),
                                        engine=self._graph_engine())
        if self._runner.failed:
            self._graph_failed = True
        return self._runner

    def _graph_engine(self):
        return CudaGraphEngine(self.device)

    def _save_step_state(self) -> tuple[torch.Tensor, dict]:
        return self.handles_rc.clone(), self.method.state()

    def _restore_step_state(self, saved: tuple[torch.Tensor, dict]) -> None:
        self.handles_rc.copy_(saved[0])
        self.method.load_state(saved[1] or None)

    def _to_host(self, packet: torch.Tensor) -> list[float]:
        """The one host-device synchronisation of a step (a test replaces it to count syncs)."""
        return packet.tolist()

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
            self.finished.copy_(torch.tensor(finished, device=self.device))
            self.given_up.copy_(torch.tensor(self._given_up_host, device=self.device))

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

    # ---------------------------------------------------------------------------------------

    def _snapshot(self) -> dict:
        return _map_snapshot({"free": self.free.detach(), "handles_rc": self.handles_rc,
                              "adam": self.optimizer.state.get(self.free, {}), "method": self.method.state(),
                              "begun": self._begun}, torch.Tensor.clone)

    def _restore(self, index: int) -> None:
        if index < 0:
            snap = {"free": self.ws0[:, : self.free.shape[1]].clone(), "handles_rc": self.handles0_rc, "adam": {}}
        else:
            snap = self.snapshots[index]
        with torch.no_grad():
            self.free.copy_(snap["free"])
        self.handles_rc.copy_(snap["handles_rc"])  # in place: a captured step reads this tensor
        self._handles_xy = [tuple(p) for p in rc_to_xy(self.handles_rc).tolist()]
        self.optimizer.state[self.free] = _map_tensors(snap["adam"], torch.Tensor.clone)
        if not snap["adam"]:
            self.optimizer.state.pop(self.free, None)
        self._continuable = True
        if index < 0:
            self.method.load_state(None)
            self._begun = False
            if self.mask_term is not None:
                self.mask_term.hold(None)
        else:
            self._begun = snap.get("begun", True)  # (False only for the start, kept when the first step diverged)
            if "method" in snap:
                self.method.load_state(snap["method"] or None)
            elif self.method.state_names:  # saved before the methods kept their state: a new segment only
                self._continuable = False

    def rollback(self, step: int) -> None:
        """Return to the state right after `step` (-1 = the start); later steps are forgotten."""
        if not -1 <= step < len(self.history):
            raise ValueError(f"step must be in [-1, {len(self.history) - 1}], got {step}")
        self._restore(step)
        del self.history[step + 1:]
        del self.snapshots[step + 1:]
        self.done = bool(self.history and self.history[-1].done and self.history[-1].error is None)
        self._update_finished(None)

    def run(self, max_steps: int | None = None, callback: Callable[[DragState, "DragSession"], None] | None = None,
            progress: bool = False, threads: int | str | None = "auto") -> DragResult:
        """Step until done or `max_steps` (default: config.max_steps) more steps; render the result. With
        `progress`, a progress bar shows the loss, the largest distance left and STALLED (see `stall`). `threads`:
        torch's CPU threads during the run (`draggan.threads`: auto gives a small generator's steps one thread;
        None leaves torch's setting alone); restored afterwards."""
        with threads_for(threads, work_macs=synthesis_macs(self.G)):
            return self._run(max_steps, callback, progress)

    def _run(self, max_steps: int | None, callback, progress: bool) -> DragResult:
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
                loss = f"{state.loss:.4f}" if math.isfinite(state.loss) else "-"
                bar.set_postfix(loss=loss, max_dist=f"{max(state.distances):.2f}px",
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
        """Everything needed to resume: config (with the sources of its values), points, mask, start latent,
        per-step snapshots."""
        return {"config": dataclasses.asdict(self.config), "handles": self.handles0_xy.tolist(),
                "targets": self.targets_xy.tolist(), "ws0": self.ws0.cpu(),
                "mask": None if self.mask is None else self.mask.cpu(),
                "history": [dataclasses.asdict(s) for s in self.history],
                "snapshots": [_map_snapshot(s, torch.Tensor.cpu) for s in self.snapshots],
                "settings": self.settings}

    @classmethod
    def from_state_dict(cls, G: Generator, state: dict, *, allow_import: bool = True) -> "DragSession":
        """Rebuild a session saved by `state_dict`, at its last step (`allow_import=False`: a file from elsewhere,
        whose method must be a registered one)."""
        config = with_sources(DragConfig(**state["config"]), state.get("settings"))
        session = cls(G, state["ws0"], state["handles"], state["targets"], mask=state["mask"], config=config,
                      allow_import=allow_import)
        session.history = [DragState(**h) for h in state["history"]]
        session.snapshots = [_map_snapshot(s, lambda t: t.to(session.device)) for s in state["snapshots"]]
        if session.history:
            session.rollback(len(session.history) - 1)
            session._first_step_features()
        return session

    def _first_step_features(self) -> None:
        """Loaded from disk: what the first step keeps of the first image (deterministic from ws0): the mask term's
        features, the divergence check's scale, and the method's own (`DragMethod.resume`)."""
        with torch.no_grad():
            feat = self.features(self.ws0)
        if self.mask_term is not None:
            self.mask_term.hold(feat)
        self.feature_scale0 = float(feature_rms(feat))
        self.method.resume(feat)


def _map_snapshot(snapshot: dict, fn: Callable[[torch.Tensor], torch.Tensor]) -> dict:
    """A step's snapshot (latent rows, handles, Adam state, and a drag method's own state: a flat dict of
    tensors and numbers) with `fn` applied to each of its tensors (a copy, a move to another device)."""
    out = {**snapshot, "free": fn(snapshot["free"]), "handles_rc": fn(snapshot["handles_rc"]),
           "adam": _map_tensors(snapshot["adam"], fn)}
    if "method" in snapshot:
        out["method"] = _map_tensors(snapshot["method"], fn)
    return out


def _map_tensors(state: dict, fn: Callable[[torch.Tensor], torch.Tensor]) -> dict:
    """`state` (an optimiser's state of one parameter) with `fn` applied to its tensors; other values as they are."""
    return {k: (fn(v) if torch.is_tensor(v) else v) for k, v in state.items()}


__all__ = ["DragResult", "DragSession", "DragState", "stall"]
