"""One browser tab's session of the web editor (`TabSession`).

A tab's session holds the image being edited (a generated seed or an inverted photo) and its
`draggan.timeline.DragTimeline`: the handle/target points, the mask of the region allowed to move, the
drag segments (a change of points or mask after some steps starts a new one from the current latent,
as the official GUI does), undo and preview by global step, the frames of the GIF and the run folder
that Save writes. What this module adds is the page's side: the checks of its input, the background
thread that steps the drag while the page shows its progress, and the locking between them.

Every change bumps `version` and wakes the page's long poll (`snapshot(since=...)`). The image is
rendered at most `max_fps` times a second while the drag runs. Nothing here knows HTTP
(`draggan.apps.editor.server` does) or how photos are inverted (the editor's `invert` callable). An inverted
photo carries the inversion's verdict on whether it lies inside the generator's domain
(`inversion.domain.check_domain`): outside it, the page shows the warning for as long as that image is edited,
and a saved session's tuned generator says so in its metadata.

Locking: a tab's `lock` guards what the page reads and is held only for quick reads and writes, so a
state request or a pause never waits for a computation; `compute` is held by whatever computes with
the tab's generator or changes its timeline (one drag step, a render, an undo, a load, a save), one
at a time. Locks are always taken in that order (`compute`, then `lock`). Inputs are checked
against `draggan.limits` (points, images, masks, archives) before anything is allocated for them; a
message shown on the page names no temporary path of the server (`Editor.redact`).

Points are (x, y) image pixels; latents are W+ `[1, num_ws, w_dim]`.
"""

from __future__ import annotations

import base64
import io
import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from draggan.apps.editor.errors import Busy, Cancelled, EditorError
from draggan.apps.editor.session_zip import uploaded_session_files, zip_saved_folder
from draggan.apps.editor.settings import GeneratorChoice
from draggan.apps.editor.values import megabytes, point_pairs, real_number, whole_number
from draggan.checkpoint import CheckpointError, load_generator_file, save_generator
from draggan.image_io import ImageError, open_image, read_mask
from draggan.latents import initial_latent
from draggan.networks import Generator
from draggan.points import as_points, check_inside
from draggan.render import save_animation
from draggan.session import DragSession
from draggan.session_io import LATENT_FILE, SESSION_FILE, TUNED_GENERATOR_FILE, load_session, read_session_meta
from draggan.settings import DragConfig
from draggan.stall import stall
from draggan.timeline import DragTimeline

log = logging.getLogger(__name__)

MASK_RGBA = (255, 196, 0, 255)  # how the page paints the region allowed to move


def png_bytes(image: np.ndarray | Image.Image) -> bytes:
    buf = io.BytesIO()
    (image if isinstance(image, Image.Image) else Image.fromarray(image)).save(buf, format="PNG")
    return buf.getvalue()


class TabSession:
    """Everything one browser tab edits. Every public method is safe to call from any thread.

    `editor` is the `draggan.apps.editor.editor.Editor` that opened the tab (its generators, limits, temporary
    folder and `redact`); this module does not import it, which imports this one."""

    def __init__(self, editor, sid: str):
        self.editor, self.sid = editor, sid
        self.lock = threading.RLock()  # what the page reads; held only briefly
        self.changed = threading.Condition(self.lock)
        self.compute = threading.RLock()  # held through a computation with the generator or the timeline
        self.version = 0  # bumped on every change the page should see
        self.image_version = 0  # the version at which the image last changed
        self.last_seen = time.monotonic()
        self.in_flight = 0  # requests of this tab being served (counted by `Editor.using`)
        self.closed = False
        self.choice: GeneratorChoice | None = None
        self.G: Generator | None = None
        self.tuned = False  # G is a pivotally tuned copy (an inverted photo)
        self.domain: dict | None = None  # an inverted photo's domain verdict (inversion.domain.check_domain)
        self.source = ""  # what the image is, in words
        self.seed: int | None = None
        self.timeline: DragTimeline | None = None  # the segments, points, mask and frames of the image
        self.image: np.ndarray | None = None  # [H, W, 3] uint8 of the current state
        self.png = b""
        self.status = "empty"  # empty | idle | running | done | inverting | error
        self.message, self.level = "", "info"
        self.progress: dict | None = None
        self.running = False
        self.worker_active = False
        self.threads: list[threading.Thread] = []  # the drag and inversion threads started, joined by `close`
        self.workdir = Path(tempfile.mkdtemp(dir=editor.tmp_root, prefix=f"tab-{sid[:8]}-"))

    # ----------------------------------------------------------------------------- state

    def _bump(self, image: bool = False) -> None:
        self.version += 1
        if image:
            self.image_version = self.version
        self.changed.notify_all()

    def _say(self, message: str, level: str = "info") -> None:
        self.message, self.level = self.editor.redact(message), level

    # What the timeline holds, read as the tab's (the page's state, the tests).
    @property
    def past(self) -> list[DragSession]:
        return self.timeline.past if self.timeline is not None else []

    @property
    def session(self) -> DragSession | None:
        return self.timeline.session if self.timeline is not None else None

    @property
    def handles(self) -> list[tuple[float, float]]:
        return self.timeline.handles if self.timeline is not None else []

    @property
    def targets(self) -> list[tuple[float, float]]:
        return self.timeline.targets if self.timeline is not None else []

    @property
    def mask(self) -> np.ndarray | None:
        return self.timeline.mask if self.timeline is not None else None

    def _total_steps(self) -> int:
        return self.timeline.steps if self.timeline is not None else 0

    def _current_ws(self) -> torch.Tensor:
        return self.timeline.ws

    def _render(self, ws: torch.Tensor | None = None) -> np.ndarray:
        """The image at `ws` (default: the current latent); the caller holds `compute`."""
        return self.timeline.render(ws)

    def _publish(self, image: np.ndarray) -> None:
        with self.lock:
            self.image, self.png = image, png_bytes(image)
            self._bump(image=True)

    def _show(self) -> None:
        """Render the current state into the page's image (the caller holds `compute`, not `lock`)."""
        self._publish(self._render())

    def _frame(self) -> None:
        with self.lock:
            self.timeline.record_frame(self.image)

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
            seg, timeline = self.session, self.timeline
            state = {
                "sid": self.sid, "version": self.version, "status": self.status, "message": self.message,
                "level": self.level, "generator": self.choice.name if self.choice else None, "seed": self.seed,
                "source": self.source, "domain": self.domain,
                "domain_warning": self.domain.get("warning") if self.domain else None, "size": None if self.image is None else [self.image.shape[1], self.image.shape[0]],
                "step": self._total_steps(), "segment_start": timeline.offset if timeline is not None else 0,
                "handles": [list(p) for p in self.handles], "targets": [list(p) for p in self.targets],
                "origins": seg.handles0_xy.tolist() if seg is not None and seg.history else [],
                "distances": [float(np.hypot(h[0] - t[0], h[1] - t[1])) for h, t in zip(self.handles, self.targets)],
                "running": self.running, "done": bool(seg is not None and seg.done),
                "stalled": stall(seg.history, seg.config.stall_steps) if seg is not None else None,
                "max_steps": timeline.drag_config.max_steps if timeline is not None else None,
                "progress": self.progress, "has_mask": self.mask is not None,
                "frames": len(timeline.frames) if timeline is not None else 0,
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

    def generate(self, generator: str | None, seed: Any, truncation_psi: Any = None) -> None:
        """Show `seed` of a generator the editor offers; the points, mask and history start afresh."""
        choice = self.editor.choice(generator)
        seed = whole_number(seed, "the seed", 0, 2**32 - 1)
        psi = self.editor.truncation_psi if truncation_psi is None else real_number(truncation_psi, "truncation", 0, 2)
        G = self.editor.generator(choice)  # may load it: outside the tab's locks
        self.pause()
        with self.compute:
            with self.lock:
                if self.status == "inverting":
                    raise Busy("wait for the inversion to finish")
            self._set_image(choice, G, initial_latent(G, seed, psi), tuned=False,
                            source=f"{choice.name}, seed {seed}, truncation {psi:g}", seed=seed)

    def _set_image(self, choice: GeneratorChoice, G: Generator, ws: torch.Tensor, *, tuned: bool, source: str,
                   seed: int | None = None, domain: dict | None = None) -> None:
        """A new image to edit (the caller holds `compute`); `domain`: an inverted photo's domain verdict. The tab
        changes at once, its picture included (a request between the two would find a generator and no image)."""
        timeline = DragTimeline(G, ws, choice.drag)
        image = timeline.render()
        with self.lock:
            self.choice, self.G, self.tuned, self.source, self.seed = choice, G, tuned, source, seed
            self.domain, self.timeline = domain, timeline
            self.image, self.png = image, png_bytes(image)
            self.status, self.progress = "idle", None
            if domain and domain.get("warning"):
                self._say(domain["warning"], "warning")
            else:  # a photo not judged says why (no threshold for this model and loss, a shorter projection)
                unjudged = f" (is it inside the model's domain? {domain['note']})" if domain and domain.get("note") else ""
                self._say(f"{source}: click a handle, then its target{unjudged}")
            self._bump(image=True)

    def upload(self, data: bytes, filename: str = "photo", generator: str | None = None) -> None:
        """Invert an uploaded photo into the generator in the background (progress in `snapshot`)."""
        if self.editor.invert is None:
            raise EditorError("this server was started without inversion; photos cannot be edited")
        if len(data) > self.editor.limits.max_upload_bytes:
            raise EditorError(f"the upload is {megabytes(len(data))}; the limit is "
                              f"{megabytes(self.editor.limits.max_upload_bytes)}")
        try:  # its format and size from the header now; the inversion decodes it (through the same checks)
            open_image(data, what="the upload").close()
        except ImageError as e:
            raise EditorError(str(e)) from None
        choice = self.editor.choice(generator)
        G = self.editor.generator(choice)
        self.pause()
        with self.compute, self.lock:
            if self.status == "inverting":
                raise Busy("an inversion is already running in this tab")
            path = self.workdir / "upload"
            path.write_bytes(data)  # as sent: the inversion's reader applies EXIF rotation and flattens alpha
            name = Path(str(filename)).name or "photo"
            self.status, self.progress = "inverting", {"phase": "projection", "step": 0, "num_steps": 0}
            self._say(f"inverting {name} into {choice.name}...")
            self._bump()
        self._start_thread(self._invert, (choice, G, path, name), f"invert-{self.sid[:6]}")

    def _start_thread(self, target: Callable, args: tuple, name: str) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True, name=name)
        with self.lock:
            self.threads = [t for t in self.threads if t.is_alive()] + [thread]
        thread.start()

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

        verdicts: list[dict] = []  # the inversion's domain verdict (inversion.domain.check_domain)
        try:
            tuned_G, ws = self.editor.invert(G, path, callback=on_step, on_domain=verdicts.append)
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
        with self.compute:
            if self.closed:
                return
            self._set_image(choice, tuned_G.eval().requires_grad_(False), ws, tuned=True,
                            source=f"{name}, inverted into {choice.name}", domain=verdicts[-1] if verdicts else None)

    # ----------------------------------------------------------------------------- points and mask

    def set_points(self, handles, targets) -> None:
        """Replace the handle/target pairs ((x, y) pixels of the image); at most MAX_POINTS of them."""
        self._require_image()
        pairs = point_pairs(handles, "handles"), point_pairs(targets, "targets")
        h, t = (as_points(p) if p else torch.zeros(0, 2, dtype=torch.float64) for p in pairs)
        if len(h) != len(t):
            raise EditorError(f"every handle needs a target: got {len(h)} handles and {len(t)} targets")
        H, W = self.image.shape[:2]
        for name, pts in (("handles", h), ("targets", t)):
            try:
                check_inside(pts, H, W, name)
            except ValueError as e:
                raise EditorError(str(e)) from None
        self.pause()
        with self.compute, self.lock:
            self._require_image()
            new_h = h.tolist()
            if not self.timeline.set_points(new_h, t.tolist()):
                return
            if self.status == "done":
                self.status = "idle"
            self._say(f"{len(new_h)} point pair{'s' if len(new_h) != 1 else ''}" if new_h else "points cleared")
            self._bump()

    def set_mask(self, data: bytes | None) -> None:
        """The region allowed to move, as a PNG the image's size (painted = may move); None/empty clears it."""
        self._require_image()
        mask = None
        if data:
            H, W = self.image.shape[:2]
            try:  # its size from the header: a mask of another size is refused before it is decoded
                mask = read_mask(data, (W, H))
            except ImageError as e:
                raise EditorError(str(e)) from None
            if not mask.any():
                mask = None
        self.pause()
        with self.compute, self.lock:
            if not self.timeline.set_mask(mask):
                return
            self._say("mask cleared: everything may move" if mask is None else
                      f"mask: {int(mask.sum())} of {mask.size} pixels may move")
            self._bump(image=True)

    # ----------------------------------------------------------------------------- the drag

    def start(self) -> None:
        """Run the drag in the background until the handles reach their targets, `pause`, or the step limit."""
        with self.lock:
            if self.running:
                return
        with self.compute, self.lock:
            self._require_image()
            if self.running:
                return
            if not self.handles:
                raise EditorError("add a point pair first: click a handle, then its target")
            self.timeline.current()
            if self.session.done:
                self._say("the handles are at their targets: move a target, add points, or undo")
                self._bump()
                return
            if len(self.session.history) >= self.session.config.max_steps:
                self._say(f"this drag has taken its {self.session.config.max_steps} steps: "
                          "move a point to continue, or undo")
                self._bump()
                return
            if not self.timeline.frames:
                self._frame()
            self.running, self.status = True, "running"
            self._say("dragging...")
            self._bump()
            if not self.worker_active:
                self.worker_active = True
                self._start_thread(self._work, (), f"drag-{self.sid[:6]}")

    def _work(self) -> None:
        """The drag thread: one step at a time under `compute`; `lock` only to read the flags and publish."""
        interval = 1.0 / self.editor.limits.max_fps
        last = 0.0
        while True:
            with self.compute:
                with self.lock:
                    s = self.session
                    if not self.running or self.closed or s is None:
                        self.worker_active = False
                        return
                try:
                    state = self.timeline.step()
                    finished = state.done or len(s.history) >= s.config.max_steps
                    now = time.monotonic()
                    image = self._render() if finished or now - last >= interval else None
                except Exception as e:  # a failed step is shown; the session stays usable (undo)
                    log.exception("drag step failed")
                    with self.lock:
                        self.running, self.worker_active, self.status = False, False, "error"
                        self._say(f"the drag failed: {e}", "error")
                        self._bump()
                    return
                with self.lock:
                    if self.closed:
                        self.worker_active = False
                        return
                    stalled = stall(s.history, s.config.stall_steps)
                    if stalled and not finished and self.level != "warning":  # said once, while the drag goes on
                        self._say(f"{stalled} (Pause to change them)", "warning")
                        self._bump()
                    elif not stalled and self.level == "warning":
                        self._say("dragging...")
                        self._bump()
                    if image is not None:
                        last = now
                        self._publish(image)
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
            time.sleep(0.001)  # let requests waiting for `compute` in

    def pause(self) -> None:
        """Stop the drag: no step starts once this is called, and it returns when the step in flight ended."""
        with self.lock:
            was_running, self.running = self.running, False
        if not was_running:
            return
        with self.compute:
            with self.lock:
                if self.status == "running":
                    self.status = "idle"
                    self._say(f"paused at step {self._total_steps()}")
            if self.G is not None:
                self._show()
                self._frame()

    def reset(self) -> None:
        """Back to the image before any drag; the points stay where they were first placed."""
        self.pause()
        with self.compute:
            with self.lock:
                self._require_image()
                self.timeline.reset()
                self.status = "idle"
                self._say("reset to the start")
            self._show()

    def undo(self, step: Any) -> None:
        """Return to the state after `step` steps of the whole timeline (0 = before any drag)."""
        step = whole_number(step, "step", 0, 2**31)
        self.pause()
        with self.compute:
            with self.lock:
                self._require_image()
                try:
                    if not self.timeline.undo(step):
                        return
                except ValueError as e:
                    raise EditorError(str(e)) from None
                self.status = "done" if self.session.done else "idle"
                self._say(f"back at step {step}")
            self._show()

    def preview(self, step: Any) -> bytes:
        """PNG of the image after `step` steps of the timeline, without going there."""
        step = whole_number(step, "step", 0, 2**31)
        with self.compute:
            with self.lock:
                self._require_image()
                try:
                    ws = self.timeline.ws_at(step)
                except ValueError as e:
                    raise EditorError(str(e)) from None
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
            frames = self.timeline.frames.pictures()
        if len(frames) < 2:
            raise EditorError("nothing to animate yet: start a drag first")
        with tempfile.TemporaryDirectory(dir=self.workdir) as folder:
            return save_animation(frames, Path(folder) / "drag.gif").read_bytes()

    def save(self) -> tuple[str, bytes]:
        """Write the session into the editor's output folder (the files of `scripts/drag.py`, plus the
        tuned generator of a photo) and return (file name, zip of that folder)."""
        self.pause()
        with self.compute:
            with self.lock:
                self._require_image()
                if self.session is None and not self.handles:
                    raise EditorError("nothing to save yet: add a point pair first")
                self.timeline.current()
                image = self.image
            stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
            folder = self.editor.out_dir / f"{stamp}_{self.sid[:6]}"
            generator = TUNED_GENERATOR_FILE if self.tuned else self.choice.name
            self.timeline.save(folder, generator=generator, after=image)
            if self.tuned:
                domain = self.domain or {}
                save_generator(self.G, folder / TUNED_GENERATOR_FILE, extra_metadata={
                    "base_generator": self.choice.name, "outside_domain": str(domain.get("outside")).lower(),
                    "projection_psnr": str(domain.get("projection_psnr"))})
            data, left_out = zip_saved_folder(folder, self.editor.limits.max_session_bytes)
            with self.lock:
                self._say(f"saved to {folder}" + (f" (the download leaves out {', '.join(left_out)} to stay within "
                                                  "max_session_mb)" if left_out else ""))
                self._bump()
            return f"draggan-session-{stamp}.zip", data

    def load(self, files: Mapping[str, bytes]) -> None:
        """Open a saved session: a zip from `save`, or `session.json` + `latent.npz` (+ `generator.safetensors`)
        of a `scripts/drag.py` folder. Every file is checked before anything is built from it."""
        files = uploaded_session_files(files, max_session_bytes=self.editor.limits.max_session_bytes)
        folder = Path(tempfile.mkdtemp(dir=self.workdir, prefix="load-"))
        for name in (SESSION_FILE, LATENT_FILE, TUNED_GENERATOR_FILE):
            if name in files:
                (folder / name).write_bytes(files[name])
        try:
            meta = read_session_meta(folder / SESSION_FILE)
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
            session = load_session(folder, G, trusted=False)  # an upload names no code and no file
        except EditorError:
            raise
        except (ValueError, KeyError, TypeError, OSError, RuntimeError, CheckpointError) as e:
            raise EditorError(f"could not load the session: {self.editor.redact(str(e), folder)}") from None
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        self.pause()
        with self.compute:
            timeline = DragTimeline.from_session(session, choice.drag)  # renders its first picture: outside `lock`
            with self.lock:
                if self.status == "inverting":
                    raise Busy("wait for the inversion to finish")
                self.choice, self.G, self.tuned, self.seed, self.domain = choice, G, tuned, None, None
                self.source = f"a saved session ({len(session.history)} steps on {name})"
                self.timeline = timeline
                self.status = "done" if session.done else "idle"
                self._say(f"loaded {self.source}")
            self._show()
            if session.history:
                self._frame()

    # ----------------------------------------------------------------------------- end

    def close(self, wait: float = 30.0) -> None:
        """Free everything this tab held: a running drag stops after its step, an inversion at its next step,
        and both threads are waited for (up to `wait` s) before the tab's files are removed."""
        with self.lock:
            self.closed, self.running = True, False
            self.changed.notify_all()
            threads = [t for t in self.threads if t is not threading.current_thread()]
        with self.compute, self.lock:
            self.timeline, self.G = None, None
        deadline = time.monotonic() + wait
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        shutil.rmtree(self.workdir, ignore_errors=True)

