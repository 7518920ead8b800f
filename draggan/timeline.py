"""The timeline of one image's drag edit: segments, the global step, undo and preview, frames, the run folder.

A `DragSession` drags one set of points under one mask. An interactive edit changes them as it goes:
changing the points or the mask after a drag has taken steps begins a new segment, a new `DragSession`
from the current latent (as the official GUI does), so the edit is a list of segments and its global
step counts the steps of all of them. `DragTimeline` owns that list: it builds the segments, steps the
current one, goes back to any global step (`undo`) or shows the latent there without going (`ws_at`),
keeps the pictures of the drag (`frames`, a `draggan.render.DragFrames`) and writes the run folder of
its current segment (`save`, through `draggan.session_io.save_run`, the CLI's writer).

It knows nothing of threads or locks: the web editor (`draggan.apps.editor.editor.TabSession`) adds those.
Points are (x, y) image pixels; latents are W+ `[1, num_ws, w_dim]`; masks [H, W] bool, True = may move.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from draggan.networks import Generator
from draggan.render import DragFrames, points_scale, to_uint8
from draggan.session import DragSession, DragState
from draggan.session_io import save_run
from draggan.settings import DragConfig


class DragTimeline:
    """The segments of one image's edit, and the points and mask the next segment drags."""

    def __init__(self, G: Generator, ws: torch.Tensor, config: DragConfig):
        """Start at the W+ latent `ws` with no points; new segments drag with `config`."""
        self.G, self.config = G, config
        self.ws_start = ws.detach().clone()
        self.past: list[DragSession] = []  # finished segments (earlier points or mask)
        self.session: DragSession | None = None  # the current segment (None until a drag starts after a change)
        self.handles: list[tuple[float, float]] = []  # where the handles are now
        self.targets: list[tuple[float, float]] = []
        self.mask: np.ndarray | None = None  # [H, W] bool of the next segment (True = may move)
        self.frames = DragFrames(points_scale(G.img_height, G.img_width))  # keyed by global step

    @classmethod
    def from_session(cls, session: DragSession, config: DragConfig | None = None) -> "DragTimeline":
        """A timeline whose only segment is `session` (a saved session, loaded), at its last step, and whose
        frames begin with the session's first picture; new segments drag with `config` (default: the session's
        settings)."""
        timeline = cls(session.G, session.ws0, session.config if config is None else config)
        timeline.session = session
        timeline._points_of(session)
        timeline.frames.add_session(session, 0, start=True)
        return timeline

    # ----------------------------------------------------------------------------- where it is

    @property
    def segments(self) -> list[DragSession]:
        return self.past + ([self.session] if self.session is not None else [])

    @property
    def offset(self) -> int:
        """The global step at which the current segment starts."""
        return sum(len(s.history) for s in self.past)

    @property
    def steps(self) -> int:
        """The global step: the steps of every segment."""
        return sum(len(s.history) for s in self.segments)

    @property
    def ws(self) -> torch.Tensor:
        """The current W+ latent (where the last segment is, or the start)."""
        segments = self.segments
        return segments[-1].ws.detach() if segments else self.ws_start

    @property
    def drag_config(self) -> DragConfig:
        """The settings of the current segment (adapted to the generator), else those a new one gets."""
        return self.session.config if self.session is not None else self.config

    @property
    def done(self) -> bool:
        """The current segment's handles reached their targets (or it stopped on an error)."""
        return self.session is not None and self.session.done

    def render(self, ws: torch.Tensor | None = None) -> np.ndarray:
        """The image [H, W, 3] uint8 at `ws` (default: the current latent)."""
        config = self.drag_config
        with torch.no_grad():
            img = self.G.synthesis((self.ws if ws is None else ws).detach(), noise_mode=config.noise_mode,
                                   force_fp32=config.force_fp32)
        return to_uint8(img)

    # ----------------------------------------------------------------------------- changes

    def set_points(self, handles: Sequence[Sequence[float]], targets: Sequence[Sequence[float]]) -> bool:
        """The handle/target pairs of the next steps (checked when the segment is built); returns whether they
        changed (a change after a drag took steps begins a new segment)."""
        handles, targets = [tuple(map(float, p)) for p in handles], [tuple(map(float, p)) for p in targets]
        if (handles, targets) == (self.handles, self.targets):
            return False
        self._new_segment()
        self.handles, self.targets = handles, targets
        return True

    def set_mask(self, mask: np.ndarray | None) -> bool:
        """The region allowed to move in the next steps (None: everything); returns whether it changed."""
        if (mask is None and self.mask is None) or (mask is not None and self.mask is not None
                                                     and np.array_equal(mask, self.mask)):
            return False
        self._new_segment()
        self.mask = mask
        return True

    def _new_segment(self) -> None:
        """Points or mask changed: the current segment (if it moved) becomes history."""
        if self.session is not None and self.session.history:
            self.past.append(self.session)
        self.session = None

    def current(self) -> DragSession:
        """The current segment, begun from the current latent with the current points and mask if there is none."""
        if self.session is None:
            if not self.handles:
                raise ValueError("the timeline has no points to drag")
            self.session = DragSession(self.G, self.ws, self.handles, self.targets, mask=self.mask,
                                        config=self.config)
        return self.session

    def step(self) -> DragState:
        """One step of the current segment (begun if needed); the handles follow it."""
        session = self.current()
        state = session.step()
        self.handles = session.handles
        return state

    def undo(self, step: int) -> bool:
        """Go back to global step `step` (0 = before any drag): the segment that holds it becomes the current
        one, rolled back there, with its points and mask; the pictures of later steps are dropped. Returns
        False (and changes nothing) when the timeline is at `step` already."""
        total = self.steps
        if not 0 <= step <= total:
            raise ValueError(f"step must be in 0..{total}, got {step}")
        if step == total:
            return False
        segments, index, local = self._locate(step)
        segments[index].rollback(local)
        self.past, self.session = segments[:index], segments[index]
        self._points_of(self.session)
        self.frames.keep_until(step)
        return True

    def ws_at(self, step: int) -> torch.Tensor:
        """The W+ latent at global step `step`, without going there (the preview of `undo(step)`)."""
        total = self.steps
        if not 0 <= step <= total:
            raise ValueError(f"step must be in 0..{total}, got {step}")
        if not self.segments:
            return self.ws_start.clone()
        segments, index, local = self._locate(step)
        return segments[index].ws_at(local)

    def _locate(self, step: int) -> tuple[list[DragSession], int, int]:
        """(segments, the index of the one holding global `step`, its own step there: -1 = its start)."""
        segments, offset = self.segments, 0
        for index, segment in enumerate(segments):
            n = len(segment.history)
            if step <= offset + n:
                return segments, index, step - offset - 1
            offset += n
        raise ValueError(f"step {step} lies beyond the timeline's {offset} steps")

    def _points_of(self, session: DragSession) -> None:
        """The points and mask where `session` is."""
        self.handles = list(session.handles)
        self.targets = [tuple(p) for p in session.targets_xy.tolist()]
        self.mask = None if session.mask is None else session.mask.cpu().numpy()

    def reset(self) -> None:
        """Back to the start: no segments, no pictures; the points and mask of the first segment, as first placed."""
        segments = self.segments
        if segments:
            first = segments[0]
            self.handles = [tuple(p) for p in first.handles0_xy.tolist()]
            self.targets = [tuple(p) for p in first.targets_xy.tolist()]
            self.mask = None if first.mask is None else first.mask.cpu().numpy()
        self.past, self.session = [], None
        self.frames.clear()

    # ----------------------------------------------------------------------------- pictures and files

    def record_frame(self, image: np.ndarray | None = None) -> None:
        """The picture of now (the current image, or `image` if already rendered, with the points) at the global step."""
        self.frames.add(self.steps, self.render() if image is None else image, self.handles, self.targets)

    def save(self, folder: str | os.PathLike, *, generator: str | None = None, after: np.ndarray | None = None,
             video: str = "gif") -> dict[str, Path]:
        """Write the run folder of the current segment (begun if needed) with the pictures of the whole timeline
        (`draggan.session_io.save_run`; `after`: the current image if already rendered)."""
        return save_run(self.current(), folder, generator=generator, frames=self.frames, after=after, video=video)
