"""The web editor's model: one `TabSession` per browser tab, and the `Editor` that owns them all.

A tab's session holds the image being edited (a generated seed or an inverted photo), the
handle/target points, the mask of the region allowed to move, and the drag: a `DragSession` that a
background thread steps while the page shows its progress. Changing the points or the mask after
some steps starts a new segment from the current latent (as the official GUI does), so the
timeline of a tab is a list of segments; `undo(k)` returns to the state after k steps of it.

Every change bumps `version` and wakes the page's long poll (`snapshot(since=...)`). The image is
rendered at most `max_fps` times a second while the drag runs. Nothing here knows HTTP
(`draggan.app.server` does) or how photos are inverted (the `invert` callable, from `inversion`).

Points are (x, y) image pixels; latents are W+ `[1, num_ws, w_dim]`.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import secrets
import shutil
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from draggan.checkpoint import load_generator_file, save_generator
from draggan.drag import DragConfig, DragSession, stall
from draggan.edit import initial_latent
from draggan.networks import Generator
from draggan.points import as_points, check_inside
from draggan.render import draw_points, points_scale, save_animation, to_uint8
from draggan.session_io import LATENT_FILE, SESSION_FILE, load_session, save_session

log = logging.getLogger(__name__)

TUNED_GENERATOR_FILE = "generator.safetensors"  # in a saved session of an inverted photo
MASK_RGBA = (255, 196, 0, 255)  # how the page paints the region allowed to move
SAVED_FILES = (SESSION_FILE, LATENT_FILE, TUNED_GENERATOR_FILE, "before.png", "after.png", "drag.gif")


class EditorError(ValueError):
    """Bad input or a request that does not fit the session's state; its text is shown on the page."""


class Busy(EditorError):
    """The session is doing something that must finish first (an inversion, say)."""


class Cancelled(Exception):
    """Raised inside an inversion whose tab was closed."""


@dataclass
class GeneratorChoice:
    """A generator the page offers, and the drag settings that suit it."""

    name: str  # shown on the page and written into saved sessions
    source: str  # what `load_generator` takes (registered name, path)
    drag: DragConfig


@dataclass
class EditorLimits:
    max_upload_bytes: int = 20 << 20  # larger uploads (photos, masks) are refused
    max_session_bytes: int = 200 << 20  # a saved session that Load accepts; Save never writes a larger one
    max_sessions: int = 16  # open tabs at once
    session_timeout: float = 60.0  # seconds without a request before a tab's session is freed
    max_fps: float = 10.0  # image updates per second while a drag runs
    poll_timeout: float = 10.0  # longest wait of one long poll


def megabytes(n: int) -> str:
    return f"{n / 2**20:.3g} MB"


def png_bytes(image: np.ndarray | Image.Image) -> bytes:
    buf = io.BytesIO()
    (image if isinstance(image, Image.Image) else Image.fromarray(image)).save(buf, format="PNG")
    return buf.getvalue()


MAX_PIXELS = 100_000_000  # larger pictures are refused before they are decoded


def decode_image(data: bytes, *, what: str = "upload", load: bool = True) -> Image.Image:
    """`data` as a PIL image (decoded only if `load`), or an `EditorError` saying why it is not one."""
    if not data:
        raise EditorError(f"the {what} is empty")
    unreadable = (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError, ValueError)
    try:
        with Image.open(io.BytesIO(data)) as probe:
            probe.verify()
        img = Image.open(io.BytesIO(data))
    except unreadable as e:
        raise EditorError(f"the {what} is not an image this editor can read ({e})") from None
    if img.size[0] * img.size[1] > MAX_PIXELS:
        raise EditorError(f"the {what} is {img.size[0]}x{img.size[1]} pixels; at most "
                          f"{MAX_PIXELS // 1_000_000} million are accepted")
    if load:
        try:
            img.load()
        except unreadable as e:
            raise EditorError(f"the {what} is not an image this editor can read ({e})") from None
    return img


class TabSession:
    """Everything one browser tab edits. Every public method is safe to call from any thread."""

    def __init__(self, editor: "Editor", sid: str):
        self.editor, self.sid = editor, sid
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.version = 0  # bumped on every change the page should see
        self.image_version = 0  # the version at which the image last changed
        self.last_seen = time.monotonic()
        self.closed = False
        self.choice: GeneratorChoice | None = None
        self.G: Generator | None = None
        self.tuned = False  # G is a pivotally tuned copy (an inverted photo)
        self.source = ""  # what the image is, in words
        self.seed: int | None = None
        self.ws_start: torch.Tensor | None = None
        self.past: list[DragSession] = []  # finished segments (earlier points or mask)
        self.session: DragSession | None = None  # the current segment
        self.handles: list[tuple[float, float]] = []
        self.targets: list[tuple[float, float]] = []
        self.mask: np.ndarray | None = None  # [H, W] bool, True = may move
        self.image: np.ndarray | None = None  # [H, W, 3] uint8 of the current state
        self.png = b""
        self.frames: list[tuple[int, Image.Image]] = []  # (global step, picture with points) for the GIF
        self.status = "empty"  # empty | idle | running | done | inverting | error
        self.message, self.level = "", "info"
        self.progress: dict | None = None
        self.running = False
        self.worker_active = False
        self.workdir = Path(tempfile.mkdtemp(prefix=f"draggan-app-{sid[:8]}-"))

    # ----------------------------------------------------------------------------- state

    def _bump(self, image: bool = False) -> None:
        self.version += 1
        if image:
            self.image_version = self.version
        self.changed.notify_all()

    def _say(self, message: str, level: str = "info") -> None:
        self.message, self.level = message, level

    def _segments(self) -> list[DragSession]:
        return self.past + ([self.session] if self.session is not None else [])

    def _offset(self) -> int:
        return sum(len(s.history) for s in self.past)

    def _total_steps(self) -> int:
        return sum(len(s.history) for s in self._segments())

    def _current_ws(self) -> torch.Tensor:
        segs = self._segments()
        return segs[-1].ws.detach() if segs else self.ws_start

    def _render(self, ws: torch.Tensor | None = None) -> np.ndarray:
        with torch.no_grad():
            img = self.G.synthesis((self._current_ws() if ws is None else ws).detach(),
                                   noise_mode=self._drag_config().noise_mode)
        return to_uint8(img)

    def _show(self) -> None:
        """Render the current state into the page's image."""
        self.image = self._render()
        self.png = png_bytes(self.image)
        self._bump(image=True)

    def _frame(self) -> None:
        step = self._total_steps()
        scale = points_scale(*self.image.shape[:2])
        self.frames = [f for f in self.frames if f[0] < step] + [
            (step, draw_points(self.image, self.handles, self.targets, scale))]

    def _drag_config(self) -> DragConfig:
        return self.session.config if self.session is not None else self.choice.drag

    def _require_image(self) -> None:
        if self.status == "inverting":
            raise Busy("wait for the inversion to finish (or load another image)")
        if self.G is None:
            raise EditorError("choose a generator and a seed, or upload a photo, first")

    def touch(self) -> None:
        self.last_seen = time.monotonic()

    def snapshot(self, since: int = -1, timeout: float = 0.0) -> dict:
        """What the page shows; waits up to `timeout` s for a version newer than `since`."""
        self.touch()
        with self.changed:
            if timeout > 0 and self.version <= since and not self.closed:
                self.changed.wait_for(lambda: self.version > since or self.closed, timeout=timeout)
            seg = self.session
            state = {
                "sid": self.sid, "version": self.version, "status": self.status, "message": self.message,
                "level": self.level, "generator": self.choice.name if self.choice else None, "seed": self.seed,
                "source": self.source, "size": None if self.image is None else [self.image.shape[1], self.image.shape[0]],
                "step": self._total_steps(), "segment_start": self._offset(),
                "handles": [list(p) for p in self.handles], "targets": [list(p) for p in self.targets],
                "origins": seg.handles0_xy.tolist() if seg is not None and seg.history else [],
                "distances": [float(np.hypot(h[0] - t[0], h[1] - t[1])) for h, t in zip(self.handles, self.targets)],
                "running": self.running, "done": bool(seg is not None and seg.done),
                "stalled": stall(seg.history, seg.config.stall_steps) if seg is not None else None,
                "max_steps": self._drag_config().max_steps if self.choice else None,
                "progress": self.progress, "has_mask": self.mask is not None, "frames": len(self.frames),
            }
            if self.image_version > since and self.png:
                state["image"] = "data:image/png;base64," + base64.b64encode(self.png).decode()
            if self.mask is not None and self.image_version > since:
                rgba = np.zeros(self.mask.shape + (4,), np.uint8)
                rgba[self.mask] = MASK_RGBA
                state["mask"] = "data:image/png;base64," + base64.b64encode(png_bytes(rgba)).decode()
            self.touch()
            return state

    # ----------------------------------------------------------------------------- the image

    def generate(self, generator: str | None, seed: int, truncation_psi: float | None = None) -> None:
        """Show `seed` of a generator the editor offers; the points, mask and history start afresh."""
        choice = self.editor.choice(generator)
        try:
            seed = int(seed)
        except (TypeError, ValueError):
            raise EditorError(f"the seed must be a whole number, got {seed!r}") from None
        if not 0 <= seed < 2**32:
            raise EditorError(f"the seed must be in [0, 2^32), got {seed}")
        psi = self.editor.truncation_psi if truncation_psi is None else float(truncation_psi)
        if not 0 <= psi <= 2:
            raise EditorError(f"truncation must be in [0, 2], got {psi}")
        self.pause()
        with self.lock:
            if self.status == "inverting":
                raise Busy("wait for the inversion to finish")
            G = self.editor.generator(choice)
            self._set_image(choice, G, initial_latent(G, seed, psi), tuned=False,
                            source=f"{choice.name}, seed {seed}, truncation {psi:g}")
            self.seed = seed

    def _set_image(self, choice: GeneratorChoice, G: Generator, ws: torch.Tensor, *, tuned: bool, source: str) -> None:
        self.choice, self.G, self.tuned, self.source, self.seed = choice, G, tuned, source, None
        self.ws_start = ws.detach().clone()
        self.past, self.session = [], None
        self.handles, self.targets, self.mask, self.frames = [], [], None, []
        self.status, self.progress = "idle", None
        self._say(f"{source}: click a handle, then its target")
        self._show()

    def upload(self, data: bytes, filename: str = "photo", generator: str | None = None) -> None:
        """Invert an uploaded photo into the generator in the background (progress in `snapshot`)."""
        if self.editor.invert is None:
            raise EditorError("this server was started without inversion; photos cannot be edited")
        if len(data) > self.editor.limits.max_upload_bytes:
            raise EditorError(f"the upload is {megabytes(len(data))}; the limit is "
                              f"{megabytes(self.editor.limits.max_upload_bytes)}")
        decode_image(data, load=False)  # a clear message now; the inversion reads the file itself
        choice = self.editor.choice(generator)
        self.pause()
        with self.lock:
            if self.status == "inverting":
                raise Busy("an inversion is already running in this tab")
            G = self.editor.generator(choice)
            path = self.workdir / "upload"
            path.write_bytes(data)  # as sent: the inversion's reader applies EXIF rotation and flattens alpha
            name = Path(filename).name or "photo"
            self.status, self.progress = "inverting", {"phase": "projection", "step": 0, "num_steps": 0}
            self._say(f"inverting {name} into {choice.name}...")
            self._bump()
        threading.Thread(target=self._invert, args=(choice, G, path, name), daemon=True,
                         name=f"invert-{self.sid[:6]}").start()

    def _invert(self, choice: GeneratorChoice, G: Generator, path: Path, name: str) -> None:
        last = [0.0]

        def on_step(phase: str, step: int, num_steps: int) -> None:
            if self.closed:
                raise Cancelled()
            now = time.monotonic()
            if now - last[0] >= 0.2 or step == num_steps:
                last[0] = now
                with self.lock:
                    self.progress = {"phase": phase, "step": step, "num_steps": num_steps}
                    self._bump()

        try:
            tuned_G, ws = self.editor.invert(G, path, callback=on_step)
        except Cancelled:
            return
        except Exception as e:  # shown on the page; the server and the tab keep working
            log.warning("inversion of %s failed: %s", name, e)
            with self.lock:
                self.status = "idle" if self.G is not None else "empty"
                self.progress = None
                self._say(f"could not invert {name}: {e}", "error")
                self._bump()
            return
        with self.lock:
            if self.closed:
                return
            self._set_image(choice, tuned_G.eval().requires_grad_(False), ws, tuned=True,
                            source=f"{name}, inverted into {choice.name}")

    # ----------------------------------------------------------------------------- points and mask

    def _new_segment(self) -> None:
        """Points or mask changed: the current segment (if it moved) becomes history."""
        if self.session is not None and self.session.history:
            self.past.append(self.session)
        self.session = None

    def set_points(self, handles, targets) -> None:
        """Replace the handle/target pairs ((x, y) pixels of the image)."""
        self._require_image()
        try:
            h, t = (as_points(v, name) if len(v) else torch.zeros(0, 2, dtype=torch.float64)
                    for v, name in ((handles, "handles"), (targets, "targets")))
        except (TypeError, ValueError, RuntimeError) as e:
            raise EditorError(f"points must be lists of (x, y) numbers: {e}") from None
        if len(h) != len(t):
            raise EditorError(f"every handle needs a target: got {len(h)} handles and {len(t)} targets")
        H, W = self.image.shape[:2]
        for name, pts in (("handles", h), ("targets", t)):
            try:
                check_inside(pts, H, W, name)
            except ValueError as e:
                raise EditorError(str(e)) from None
        self.pause()
        with self.lock:
            self._require_image()
            new_h = [tuple(p) for p in h.tolist()]
            new_t = [tuple(p) for p in t.tolist()]
            if (new_h, new_t) == (self.handles, self.targets):
                return
            self._new_segment()
            self.handles, self.targets = new_h, new_t
            if self.status == "done":
                self.status = "idle"
            self._say(f"{len(new_h)} point pair{'s' if len(new_h) != 1 else ''}" if new_h else "points cleared")
            self._bump()

    def set_mask(self, data: bytes | None) -> None:
        """The region allowed to move, as a PNG the image's size (painted = may move); None/empty clears it."""
        self._require_image()
        mask = None
        if data:
            img = decode_image(data, what="mask")
            H, W = self.image.shape[:2]
            if img.size != (W, H):
                raise EditorError(f"the mask is {img.size[0]}x{img.size[1]}, the image {W}x{H}")
            arr = np.asarray(img.convert("RGBA"))
            mask = (arr[..., 3] >= 128) & (arr[..., :3].max(axis=2) >= 128)
            if not mask.any():
                mask = None
        self.pause()
        with self.lock:
            if (mask is None and self.mask is None) or (mask is not None and self.mask is not None
                                                         and np.array_equal(mask, self.mask)):
                return
            self._new_segment()
            self.mask = mask
            self._say("mask cleared: everything may move" if mask is None else
                      f"mask: {int(mask.sum())} of {mask.size} pixels may move")
            self._bump(image=True)

    # ----------------------------------------------------------------------------- the drag

    def start(self) -> None:
        """Run the drag in the background until the handles reach their targets, `pause`, or the step limit."""
        with self.lock:
            self._require_image()
            if self.running:
                return
            if not self.handles:
                raise EditorError("add a point pair first: click a handle, then its target")
            if self.session is None:
                self.session = DragSession(self.G, self._current_ws(), self.handles, self.targets,
                                           mask=self.mask, config=self.choice.drag)
            if self.session.done:
                self._say("the handles are at their targets: move a target, add points, or undo")
                self._bump()
                return
            if len(self.session.history) >= self.session.config.max_steps:
                self._say(f"this drag has taken its {self.session.config.max_steps} steps: "
                          "move a point to continue, or undo")
                self._bump()
                return
            if not self.frames:
                self._frame()
            self.running, self.status = True, "running"
            self._say("dragging...")
            self._bump()
            if not self.worker_active:
                self.worker_active = True
                threading.Thread(target=self._work, daemon=True, name=f"drag-{self.sid[:6]}").start()

    def _work(self) -> None:
        interval = 1.0 / self.editor.limits.max_fps
        last = 0.0
        while True:
            with self.lock:
                s = self.session
                if not self.running or self.closed or s is None:
                    self.worker_active = False
                    return
                try:
                    state = s.step()
                except Exception as e:  # a failed step is shown; the session stays usable (undo)
                    log.exception("drag step failed")
                    self.running, self.worker_active, self.status = False, False, "error"
                    self._say(f"the drag failed: {e}", "error")
                    self._show()
                    return
                self.handles = list(s.handles)
                limit = len(s.history) >= s.config.max_steps
                finished = state.done or limit
                stalled = stall(s.history, s.config.stall_steps)
                if stalled and not finished and self.level != "warning":  # said once, while the drag goes on
                    self._say(f"{stalled} (Pause to change them)", "warning")
                    self._bump()
                elif not stalled and self.level == "warning":
                    self._say("dragging...")
                    self._bump()
                now = time.monotonic()
                if finished or now - last >= interval:
                    last = now
                    self._show()
                    self._frame()
                if finished:
                    self.running, self.worker_active = False, False
                    if state.error:
                        self.status = "error"
                        self._say(state.error, "error")
                    elif state.done:
                        self.status = "done"
                        self._say(f"done: the handles reached their targets in {len(s.history)} steps")
                    else:
                        self.status = "idle"
                        left = f"{max(state.distances):.1f} px left"
                        self._say(f"stopped at the step limit ({s.config.max_steps}); {left}"
                                  + (f"; {stalled}" if stalled else ""), "warning" if stalled else "info")
                    self._bump()
                    return
            time.sleep(0.001)  # let requests waiting for the lock in

    def pause(self) -> None:
        """Stop after the current step (no step runs once this returns)."""
        with self.lock:
            if self.running:
                self.running = False
                self.status = "idle"
                self._say(f"paused at step {self._total_steps()}")
                self._show()
                self._frame()

    def reset(self) -> None:
        """Back to the image before any drag; the points stay where they were first placed."""
        self.pause()
        with self.lock:
            self._require_image()
            segs = self._segments()
            if segs:
                first = segs[0]
                self.handles = [tuple(p) for p in first.handles0_xy.tolist()]
                self.targets = [tuple(p) for p in first.targets_xy.tolist()]
                self.mask = None if first.mask is None else first.mask.cpu().numpy()
            self.past, self.session, self.frames = [], None, []
            self.status = "idle"
            self._say("reset to the start")
            self._show()

    def undo(self, step: int) -> None:
        """Return to the state after `step` steps of the whole timeline (0 = before any drag)."""
        self.pause()
        with self.lock:
            self._require_image()
            total = self._total_steps()
            try:
                step = int(step)
            except (TypeError, ValueError):
                raise EditorError(f"step must be a whole number, got {step!r}") from None
            if not 0 <= step <= total:
                raise EditorError(f"step must be in 0..{total}, got {step}")
            if step == total:
                return
            offset = 0
            segs = self._segments()
            for i, seg in enumerate(segs):
                n = len(seg.history)
                if step <= offset + n:
                    seg.rollback(step - offset - 1)
                    self.past, self.session = segs[:i], seg
                    break
                offset += n
            self.handles = list(self.session.handles)
            self.targets = [tuple(p) for p in self.session.targets_xy.tolist()]
            self.mask = None if self.session.mask is None else self.session.mask.cpu().numpy()
            self.frames = [f for f in self.frames if f[0] <= step]
            self.status = "done" if self.session.done else "idle"
            self._say(f"back at step {step}")
            self._show()

    def preview(self, step: int) -> bytes:
        """PNG of the image after `step` steps of the timeline, without going there."""
        with self.lock:
            self._require_image()
            step = int(step)
            total = self._total_steps()
            if not 0 <= step <= total:
                raise EditorError(f"step must be in 0..{total}, got {step}")
            offset, ws = 0, self.ws_start
            for seg in self._segments():
                n = len(seg.history)
                if step <= offset + n:
                    ws = seg.ws_at(step - offset - 1)
                    break
                offset += n
            return png_bytes(self._render(ws))

    # ----------------------------------------------------------------------------- files

    def result_png(self) -> bytes:
        with self.lock:
            self._require_image()
            return self.png

    def animation(self) -> bytes:
        """The GIF of the drag so far (handles red, targets blue)."""
        with self.lock:
            self._require_image()
            if len(self.frames) < 2:
                raise EditorError("nothing to animate yet: start a drag first")
            path = save_animation([f for _, f in self.frames], self.workdir / "drag.gif")
            return path.read_bytes()

    def save(self) -> tuple[str, bytes]:
        """Write the session into the editor's output folder (the files of `scripts/drag.py`, plus the
        tuned generator of a photo) and return (file name, zip of that folder)."""
        self.pause()
        with self.lock:
            self._require_image()
            if self.session is None:
                if not self.handles:
                    raise EditorError("nothing to save yet: add a point pair first")
                self.session = DragSession(self.G, self._current_ws(), self.handles, self.targets,
                                           mask=self.mask, config=self.choice.drag)
            stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
            folder = self.editor.out_dir / f"{stamp}_{self.sid[:6]}"
            generator = TUNED_GENERATOR_FILE if self.tuned else self.choice.name
            save_session(self.session, folder, generator=generator)
            if self.tuned:
                save_generator(self.G, folder / TUNED_GENERATOR_FILE, extra_metadata={"base_generator": self.choice.name})
            Image.fromarray(self._render(self.session.ws0)).save(folder / "before.png")
            Image.fromarray(self.image).save(folder / "after.png")
            if len(self.frames) >= 2:
                save_animation([f for _, f in self.frames], folder / "drag.gif")
            data, left_out = self._zip(folder)
            self._say(f"saved to {folder}" + (f" (the download leaves out {', '.join(left_out)} to stay within "
                                              "max_session_mb)" if left_out else ""))
            self._bump()
            return f"draggan-session-{stamp}.zip", data

    def _zip(self, folder: Path) -> tuple[bytes, list[str]]:
        """The zip of a saved folder, no larger than Load accepts: the pictures (the GIF first) are left out of
        it when the session would not fit otherwise. Returns (zip, names left out)."""
        limit = self.editor.limits.max_session_bytes
        names = [n for n in SAVED_FILES if (folder / n).is_file()]
        optional = [n for n in ("drag.gif", "after.png", "before.png") if n in names]
        left_out: list[str] = []
        while True:
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
                for name in names:
                    if name not in left_out:
                        zf.write(folder / name, name)
            if len(buf.getvalue()) <= limit:
                return buf.getvalue(), left_out
            if len(left_out) == len(optional):
                raise EditorError(f"this session takes {megabytes(len(buf.getvalue()))}, more than Load accepts "
                                  f"({megabytes(limit)}); it is saved in {folder} (raise max_session_mb to load it)")
            left_out.append(optional[len(left_out)])

    def load(self, files: Mapping[str, bytes]) -> None:
        """Open a saved session: a zip from `save`, or `session.json` + `latent.npz` (+ `generator.safetensors`)
        of a `scripts/drag.py` folder."""
        files = dict(files)
        if len(files) == 1 and next(iter(files)).lower().endswith(".zip"):
            files = self._unzip(next(iter(files.values())))
        files = {Path(k).name: v for k, v in files.items()}
        missing = [n for n in (SESSION_FILE, LATENT_FILE) if n not in files]
        if missing:
            raise EditorError(f"a saved session needs {SESSION_FILE} and {LATENT_FILE}; missing: {', '.join(missing)}")
        folder = Path(tempfile.mkdtemp(dir=self.workdir, prefix="load-"))
        for name in (SESSION_FILE, LATENT_FILE, TUNED_GENERATOR_FILE):
            if name in files:
                (folder / name).write_bytes(files[name])
        try:
            meta = json.loads(files[SESSION_FILE])
            name = meta.get("generator")
            if TUNED_GENERATOR_FILE in files or name == TUNED_GENERATOR_FILE:
                if TUNED_GENERATOR_FILE not in files:
                    raise EditorError(f"this session edits an inverted photo; include its {TUNED_GENERATOR_FILE}")
                G = load_generator_file(folder / TUNED_GENERATOR_FILE).to(self.editor.device)
                G.eval().requires_grad_(False)
                base = self.editor.choice(None)
                choice, tuned = GeneratorChoice(base.name, base.source, DragConfig(**meta["config"])), True
            else:
                choice = self.editor.choice(name)
                G, tuned = self.editor.generator(choice), False
            session = load_session(folder, G)
        except EditorError:
            raise
        except (ValueError, KeyError, TypeError, OSError, RuntimeError) as e:
            raise EditorError(f"could not load the session: {e}") from None
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        self.pause()
        with self.lock:
            if self.status == "inverting":
                raise Busy("wait for the inversion to finish")
            self.choice, self.G, self.tuned, self.seed = choice, G, tuned, None
            self.source = f"a saved session ({len(session.history)} steps on {name})"
            self.ws_start = session.ws0.clone()
            self.past, self.session = [], session
            self.handles = list(session.handles)
            self.targets = [tuple(p) for p in session.targets_xy.tolist()]
            self.mask = None if session.mask is None else session.mask.cpu().numpy()
            self.status = "done" if session.done else "idle"
            start = self._render(session.ws0)
            scale = points_scale(*start.shape[:2])
            self.frames = [(0, draw_points(start, session.handles0_xy.tolist(), self.targets, scale))]
            self._say(f"loaded {self.source}")
            self._show()
            if session.history:
                self._frame()

    def _unzip(self, data: bytes) -> dict[str, bytes]:
        limit = 4 * self.editor.limits.max_session_bytes
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                infos = [i for i in zf.infolist() if Path(i.filename).name in SAVED_FILES and not i.is_dir()]
                if sum(i.file_size for i in infos) > limit:
                    raise EditorError(f"the zip unpacks to more than {megabytes(limit)}")
                return {Path(i.filename).name: zf.read(i) for i in infos}
        except zipfile.BadZipFile as e:
            raise EditorError(f"not a zip file: {e}") from None

    # ----------------------------------------------------------------------------- end

    def close(self) -> None:
        """Free everything this tab held (a running drag or inversion stops)."""
        with self.lock:
            self.closed, self.running = True, False
            self.past, self.session, self.G, self.frames = [], None, None, []
            self.changed.notify_all()
        shutil.rmtree(self.workdir, ignore_errors=True)


class Editor:
    """The server's state: the generators it offers (loaded once, shared read-only by the tabs) and the
    open tabs' sessions."""

    def __init__(self, choices: list[GeneratorChoice], *, load: Callable[[str], Generator],
                 invert: Callable[..., tuple[Generator, torch.Tensor]] | None = None,
                 out_dir: str | Path = "outputs/app", truncation_psi: float = 0.7,
                 limits: EditorLimits | None = None, device: torch.device | str = "cpu"):
        """`load(source)` gives a generator; `invert(G, path, callback=...)` gives (tuned G, ws) for a photo."""
        if not choices:
            raise ValueError("the editor needs at least one generator")
        self.choices = {c.name: c for c in choices}
        self.default = choices[0].name
        self._load, self.invert = load, invert
        self.out_dir = Path(out_dir)
        self.truncation_psi = truncation_psi
        self.limits = limits or EditorLimits()
        self.device = torch.device(device)
        self.sessions: dict[str, TabSession] = {}
        self._generators: dict[str, Generator] = {}
        self._lock = threading.Lock()
        self._load_lock = threading.Lock()

    def choice(self, name: str | None) -> GeneratorChoice:
        name = self.default if name in (None, "") else name
        if name not in self.choices:
            raise EditorError(f"unknown generator {name!r}; this server offers {', '.join(self.choices)}")
        return self.choices[name]

    def generator(self, choice: GeneratorChoice) -> Generator:
        with self._load_lock:
            if choice.name not in self._generators:
                try:
                    G = self._load(choice.source)
                except Exception as e:  # missing weights, no network: the message says what to do
                    raise EditorError(f"could not load {choice.name}: {e}") from None
                self._generators[choice.name] = G.eval().requires_grad_(False)
            return self._generators[choice.name]

    def open(self) -> TabSession:
        self.reap()
        with self._lock:
            if len(self.sessions) >= self.limits.max_sessions:
                raise Busy(f"{len(self.sessions)} tabs are open, the limit of this server; close one")
            sid = secrets.token_urlsafe(12)
            tab = self.sessions[sid] = TabSession(self, sid)
        return tab

    def get(self, sid: str) -> TabSession | None:
        with self._lock:
            tab = self.sessions.get(sid)
        if tab is not None:
            tab.touch()
        return tab

    def close(self, sid: str) -> bool:
        with self._lock:
            tab = self.sessions.pop(sid, None)
        if tab is not None:
            tab.close()
        return tab is not None

    def reap(self) -> int:
        """Free the sessions of tabs that have not been heard from for `session_timeout` seconds."""
        now = time.monotonic()
        with self._lock:
            stale = [sid for sid, t in self.sessions.items() if now - t.last_seen > self.limits.session_timeout]
        for sid in stale:
            log.info("freeing the session of a silent tab (%s)", sid[:6])
            self.close(sid)
        return len(stale)

    def shutdown(self) -> None:
        for sid in list(self.sessions):
            self.close(sid)
