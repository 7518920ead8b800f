"""Turning tensors into pictures: PNGs, and GIF/MP4 trajectories with handles and targets drawn (`DragFrames`)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image, ImageDraw

if TYPE_CHECKING:  # only for type hints: the drag session imports nothing from here
    from draggan.session import DragSession, DragState

HANDLE_COLOR = (230, 40, 40)
TARGET_COLOR = (40, 110, 240)


def to_uint8(img: torch.Tensor) -> np.ndarray:
    """[1, C, H, W] or [C, H, W] in [-1, 1] -> [H, W, 3] uint8 (the official mapping x * 127.5 + 128)."""
    if img.ndim == 4:
        img = img[0]
    arr = (img.detach().float().cpu() * 127.5 + 128).clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    return np.repeat(arr, 3, axis=2) if arr.shape[2] == 1 else arr


def points_scale(height: int, width: int) -> int:
    """The whole-number upscaling that makes pictures with points at least about 256 px wide."""
    return max(1, 256 // max(height, width))


def draw_points(image: np.ndarray, handles: Sequence[Sequence[float]], targets: Sequence[Sequence[float]],
                scale: int = 1) -> Image.Image:
    """The image (upscaled by `scale`) with red handles, blue targets and arrows between them."""
    pil = Image.fromarray(image)
    if scale != 1:
        pil = pil.resize((pil.width * scale, pil.height * scale), Image.NEAREST)
    draw = ImageDraw.Draw(pil)
    r = max(3, max(pil.width, pil.height) // 50)
    for (hx, hy), (tx, ty) in zip(handles, targets):
        h = ((hx + 0.5) * scale, (hy + 0.5) * scale)
        t = ((tx + 0.5) * scale, (ty + 0.5) * scale)
        draw.line([h, t], fill=(255, 255, 255), width=max(1, r // 2))
        draw.ellipse([t[0] - r, t[1] - r, t[0] + r, t[1] + r], fill=TARGET_COLOR)
        draw.ellipse([h[0] - r, h[1] - r, h[0] + r, h[1] + r], fill=HANDLE_COLOR)
    return pil


def save_png(image: np.ndarray | Image.Image, path: str | os.PathLike) -> Path:
    path = Path(path)
    (image if isinstance(image, Image.Image) else Image.fromarray(image)).save(path)
    return path


def save_animation(frames: Sequence[Image.Image], path: str | os.PathLike, fps: int = 10) -> Path:
    """A GIF (or MP4, by the file's suffix) of `frames`; the last frame is held for a second."""
    import imageio.v2 as imageio

    path = Path(path)
    arrays = [np.asarray(f.convert("RGB")) for f in frames]
    arrays += [arrays[-1]] * fps
    if path.suffix.lower() == ".mp4":
        even = [a[: a.shape[0] // 2 * 2, : a.shape[1] // 2 * 2] for a in arrays]
        imageio.mimsave(path, even, fps=fps, macro_block_size=1)
    else:
        imageio.mimsave(path, arrays, duration=1000 / fps, loop=0)
    return path


def save_sample_grid(G, z: torch.Tensor, path: Path, *, grid: int, truncation_psi: float = 1.0, scale: int = 1) -> Path:
    """A grid x grid PNG of G's images for the latents `z` (noise 'const'), each pixel `scale` x `scale` pixels
    (nearest neighbour: a 64-px model's faces at a size a reader can see, every pixel as it was)."""
    from draggan.latents import synthesize, ws_from_z

    imgs = synthesize(G, ws_from_z(G, z, truncation_psi), batch=16)
    imgs = (imgs * 127.5 + 128).clamp(0, 255).to(torch.uint8).cpu()
    n, c, h, w = imgs.shape
    tiles = imgs[: grid * grid].reshape(grid, grid, c, h, w).permute(0, 3, 1, 4, 2).reshape(grid * h, grid * w, c)
    path.parent.mkdir(parents=True, exist_ok=True)
    picture = Image.fromarray(tiles.numpy())
    if scale > 1:
        picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
    picture.save(path)
    return path


class DragFrames:
    """The pictures of a drag for its GIF: the image with its handles (red) and targets (blue), each at the step
    of the drag it shows (the global step of a `draggan.timeline.DragTimeline`, or a session's own step count).

    One recorder for the CLI (`draggan.edit.edit_and_save`), the editor and the evaluation's examples: adding a
    picture at step k drops those of later steps (they were undone), and `keep_until(k)` drops them on undo.
    """

    def __init__(self, scale: int = 1):  # whole-number upscaling of the pictures (see `points_scale`)
        self.scale = scale
        self.items: list[tuple[int, Image.Image]] = []  # (step, picture), in the order of the steps

    @classmethod
    def from_start(cls, session: "DragSession", scale: int | None = None) -> "DragFrames":
        """Frames holding `session`'s first image (its handles where placed) at step 0, for a `run` whose
        `callback()` adds the rest; `scale` defaults to `points_scale` of the image."""
        frames = cls(points_scale(*session.size) if scale is None else scale)
        frames.add_session(session, 0, start=True)
        return frames

    def __len__(self) -> int:
        return len(self.items)

    def pictures(self) -> list[Image.Image]:
        return [picture for _, picture in self.items]

    def add(self, step: int, image: np.ndarray, handles: Sequence[Sequence[float]],
            targets: Sequence[Sequence[float]]) -> None:
        """The picture of `image` ([H, W, 3] uint8) with its points at `step`, replacing those of step >= `step`."""
        picture = draw_points(image, handles, targets, self.scale)
        self.items = [f for f in self.items if f[0] < step] + [(step, picture)]

    def add_session(self, session: "DragSession", step: int, *, start: bool = False) -> None:
        """The picture of `session` now (its current image and handles), or at its start (its first image and
        the handles where they were placed) with `start`, at `step`."""
        targets = session.targets_xy.tolist()
        if start:
            self.add(step, to_uint8(session.render(session.ws0)), session.handles0_xy.tolist(), targets)
        else:
            self.add(step, to_uint8(session.render()), session.handles, targets)

    def callback(self, every: int = 1, offset: int = 0) -> Callable[["DragState", "DragSession"], None]:
        """A `DragSession.run` callback that adds the picture after every `every`-th step and after the last,
        at `offset` plus the number of the session's steps taken."""
        def on_step(state: "DragState", session: "DragSession") -> None:
            if state.step % every == 0 or state.done:
                self.add_session(session, offset + state.step + 1)

        return on_step

    def keep_until(self, step: int) -> None:
        """Forget the pictures of the steps after `step` (an undo)."""
        self.items = [f for f in self.items if f[0] <= step]

    def clear(self) -> None:
        self.items = []

    def save(self, path: str | os.PathLike, fps: int = 10) -> Path:
        """The GIF (or MP4) of the pictures, see `save_animation`."""
        if not self.items:
            raise ValueError("no frames to animate")
        return save_animation(self.pictures(), path, fps=fps)
