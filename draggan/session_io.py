"""Saving and loading edit sessions: `session.json` (points, config, per-step history), `latent.npz` (start and
final latents, and the per-step optimiser and method snapshots for resume/roll-back) and `drag_config.yaml` (every
drag setting with its source, `draggan.settings`); `save_run` writes them with the pictures of the drag, as one run
folder (the CLI's and the editor's).

Loading reads untrusted files (a resumed run, a session uploaded to the editor), and refuses, when it is
loaded (not later, when the edit starts or the page polls), a session that is not one this project wrote:

- `session.json` is read under the JSON limits (`draggan.files.read_json`: size, containers, values,
  depth) and checked for its structure: a history as long as its step count, at most MAX_DRAG_STEPS
  steps and MAX_POINTS point pairs, every handle, target and history entry of the right types, every
  number finite (a step's loss may be null: the project writes a NaN loss so), every point inside the
  generator's image;
- every array of `latent.npz` is sized from its header before it is read (`draggan.archives.read_npz`): a
  plain numeric dtype, a name the session's steps account for, at most the elements of its kind, the whole
  archive inflating to at most `MAX_NPZ_INFLATION` times its size (floats barely compress), and every
  value finite (a NaN or an infinity in a latent or an optimiser state would only surface as a failed edit).

A truncated or malformed file is a SessionFileError naming it. A session from elsewhere (`trusted=False`: an
upload to the editor) may name only registered drag methods and no file of this machine (a method's path
options, such as the latent transformer's weights).
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from draggan.archives import read_npz
from draggan.files import FileFormatError, atomic_write, read_json
from draggan.limits import MAX_ARCHIVE_BYTES, MAX_DRAG_STEPS, MAX_POINTS
from draggan.methods.registry import get_method
from draggan.networks import Generator
from draggan.render import DragFrames, draw_points, points_scale, save_png, to_uint8
from draggan.session import DragSession
from draggan.settings import write_settings

SESSION_FILE = "session.json"
LATENT_FILE = "latent.npz"
TUNED_GENERATOR_FILE = "generator.safetensors"  # the generator tuned on an inverted photo (inversion, the editor)


class SessionFileError(FileFormatError):
    """A saved session whose files are missing, truncated or malformed; the message names the file."""


def json_safe(x: Any) -> Any:
    """`x` with every non-finite float replaced by None: JSON has no NaN or Infinity, and other tools
    (`JSON.parse`, `jq`) reject files that hold them."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    return x


def save_session(session: DragSession, folder: str | os.PathLike, *, generator: str | None = None) -> Path:
    """Write `session.json` and `latent.npz` into `folder` (each written atomically)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = session.state_dict()
    arrays = {"ws0": state["ws0"].numpy(), "ws_final": session.ws.detach().cpu().numpy()}
    if state["mask"] is not None:
        arrays["mask"] = state["mask"].numpy()
    for i, snap in enumerate(state["snapshots"]):
        arrays[f"step{i}_free"] = snap["free"].numpy()
        arrays[f"step{i}_handles_rc"] = snap["handles_rc"].numpy()
        for key, value in snap["adam"].items():
            arrays[f"step{i}_adam_{key}"] = value.numpy() if torch.is_tensor(value) else np.asarray(value)
        for key, value in snap.get("method", {}).items():  # a drag method's own state (FreeDrag's templates...)
            arrays[f"step{i}_method_{key}"] = value.numpy() if torch.is_tensor(value) else np.asarray(value)
    meta = {"generator": generator, "config": state["config"], "handles": state["handles"],
            "targets": state["targets"], "steps": len(state["history"]), "done": session.done,
            "final_handles": session.handles, "history": state["history"], "settings": state["settings"]}

    def write_npz(p: Path) -> None:
        with open(p, "wb") as f:
            np.savez_compressed(f, **arrays)

    atomic_write(folder / LATENT_FILE, write_npz)
    text = json.dumps(json_safe(meta), indent=1, allow_nan=False)  # a step's loss is null where it was NaN
    atomic_write(folder / SESSION_FILE, lambda p: p.write_text(text))
    write_settings(session.settings, folder)
    return folder


def save_run(session: DragSession, folder: str | os.PathLike, *, generator: str | None = None,
             frames: DragFrames | None = None, video: str = "gif", before: np.ndarray | None = None,
             after: np.ndarray | None = None) -> dict[str, Path]:
    """Write a drag run into `folder`: `before.png` (the session's first image; `before` if already rendered),
    `after.png` (its current image, or `after`), each also with its points drawn (`*_points.png`), the animation
    `drag.<video>` of `frames` (when there are any), and `session.json` + `latent.npz` (`save_session`).
    Returns the paths written, by role: before, after, animation (if written), session, latent."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    targets = session.targets_xy.tolist()
    scale = points_scale(*session.size)
    before = to_uint8(session.render(session.ws0)) if before is None else before
    after = to_uint8(session.render()) if after is None else after
    files = {"before": save_png(before, folder / "before.png"), "after": save_png(after, folder / "after.png")}
    save_png(draw_points(before, session.handles0_xy.tolist(), targets, scale), folder / "before_points.png")
    save_png(draw_points(after, session.handles, targets, scale), folder / "after_points.png")
    if frames is not None and len(frames):
        files["animation"] = frames.save(folder / f"drag.{video}")
    save_session(session, folder, generator=generator)
    return {**files, "session": folder / SESSION_FILE, "latent": folder / LATENT_FILE}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _points_problem(points: Any, name: str, count: int | None = None) -> str | None:
    """Why `points` is not a list of (x, y) pairs of finite numbers (of `count` pairs), or None."""
    if not isinstance(points, list) or (count is not None and len(points) != count):
        return f"has {name} that are not a list of {count if count is not None else ''} (x, y) pairs".replace("  ", " ")
    for i, p in enumerate(points):
        if not isinstance(p, list) or len(p) != 2 or not all(_is_number(v) for v in p):
            return f"has {name}[{i}] = {str(p)[:40]}, not an (x, y) pair of finite numbers"
    return None


_HISTORY_KEYS = {"step", "handles", "loss", "distances", "done", "error", "extras"}  # draggan.session.DragState's
MAX_EXTRAS = 16  # named values a method reports per step (StableDrag: 1), each at most 16 values per handle


def _extras_ok(extras: Any, pairs: int) -> bool:
    """A step's extras as saved: at most MAX_EXTRAS names, each a list of numbers (null: a NaN, as JSON has none)."""
    return isinstance(extras, dict) and len(extras) <= MAX_EXTRAS and all(
        isinstance(k, str) and len(k) <= 64 and isinstance(v, list) and len(v) <= 16 * max(pairs, 1)
        and all(x is None or _is_number(x) for x in v) for k, v in extras.items())


def _history_problem(history: list, pairs: int) -> str | None:
    """Why a saved history is not one of `pairs` handles as the project writes it, or None."""
    for i, h in enumerate(history):
        if not isinstance(h, dict) or not _HISTORY_KEYS - {"error", "extras"} <= set(h) <= _HISTORY_KEYS:
            return f"has a history entry {i} without the fields of a step ({', '.join(sorted(_HISTORY_KEYS))})"
        problem = _points_problem(h["handles"], f"history[{i}].handles", pairs)
        if problem:
            return problem
        valid = {"step": type(h["step"]) is int and h["step"] == i,
                 "loss": h["loss"] is None or _is_number(h["loss"]),  # null: a NaN loss, as save_session writes it
                 "distances": isinstance(h["distances"], list) and len(h["distances"]) == pairs
                 and all(_is_number(d) and d >= 0 for d in h["distances"]),
                 "done": isinstance(h["done"], bool),
                 "error": h.get("error") is None or (isinstance(h["error"], str) and len(h["error"]) <= 1000),
                 "extras": _extras_ok(h.get("extras", {}), pairs)}
        for field, ok in valid.items():
            if not ok:
                return f"has history[{i}].{field} = {str(h[field])[:40]!r}, not a value a step saves"
    return None


def read_session_meta(path: str | os.PathLike) -> dict:
    """`session.json` (or the session folder holding it), checked for the structure `load_session` needs and
    for values a saved session holds (the module docstring lists them)."""
    path = Path(path)
    if path.is_dir():
        for name in (SESSION_FILE, LATENT_FILE):
            if not (path / name).is_file():
                raise FileNotFoundError(f"{path / name} is missing: not a saved drag session")
        path = path / SESSION_FILE
    try:
        meta = read_json(path)
    except FileFormatError as e:
        raise SessionFileError(str(e)) from None
    steps = meta.get("steps") if isinstance(meta, dict) else None
    problem = None
    if not isinstance(meta, dict):
        problem = f"holds a {type(meta).__name__}, not an object"
    elif not all(isinstance(meta.get(k), list) for k in ("handles", "targets", "history")):
        problem = "lacks its handles, targets or history lists"
    elif not isinstance(meta.get("config"), dict):
        problem = "lacks its config object"
    elif type(steps) is not int or not 0 <= steps <= MAX_DRAG_STEPS:
        problem = f"gives {steps!r} steps, not a whole number in [0, {MAX_DRAG_STEPS}]"
    elif len(meta["history"]) != steps or not all(isinstance(h, dict) for h in meta["history"]):
        problem = f"has a history of {len(meta['history'])} entries for {steps} steps"
    elif len(meta["handles"]) > MAX_POINTS:
        problem = f"has {len(meta['handles'])} handles; at most {MAX_POINTS} are accepted"
    else:
        problem = (_points_problem(meta["handles"], "handles") or _points_problem(
            meta["targets"], "targets", len(meta["handles"])) or _history_problem(meta["history"], len(meta["handles"])))
        if problem is None and not (meta.get("generator") is None or isinstance(meta["generator"], str)):
            problem = f"names its generator {str(meta['generator'])[:40]}, not a string"
    if problem:
        raise SessionFileError(f"{path} {problem}: not a saved drag session")
    return meta


METHOD_ELEMENTS_PER_HANDLE = 512 * 9  # the largest state array of a drag method, per handle (FreeDrag's template)


def _method_value(array: np.ndarray) -> Any:
    """A saved entry of a method's state: whole numbers and flags as Python values, anything else a tensor."""
    if array.ndim == 0 and array.dtype.kind in "biu":
        return array.item()
    return torch.from_numpy(array)


MAX_NPZ_INFLATION = 4  # latent.npz inflates to at most this many times its size (+ a mask and 16 MB); measured: 1.0
_ARRAY_NAME = re.compile(r"ws0|ws_final|mask|step(\d{1,5})_(free|handles_rc|adam_(?:step|exp_avg|exp_avg_sq)|method_\w{1,64})")


def _outside(points: Any, height: int, width: int, margin: float = 1.0) -> bool:
    """Whether any (x, y) of `points` lies more than `margin` px outside a `height` x `width` image."""
    xy = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return bool(((xy < -margin) | (xy > np.array([width - 1, height - 1]) + margin)).any())


def load_session(folder: str | os.PathLike, G: Generator, *, trusted: bool = True) -> DragSession:
    """Rebuild a saved session at its last step; `rollback(k)` then returns to any earlier step. A session that
    is not one of `G` as the project saves it (the module docstring says what is checked) is a SessionFileError.
    `trusted=False` (a session from elsewhere): its drag method must be a registered one, and it may name no file
    of this machine."""
    folder = Path(folder)
    meta = read_session_meta(folder)
    if not trusted:
        _check_untrusted_config(meta["config"], folder / SESSION_FILE)
    latent, (H, W) = G.num_ws * G.w_dim, (G.img_height, G.img_width)
    for name, points in [("handles", meta["handles"]), ("targets", meta["targets"])] + [
            (f"history[{i}].handles", h["handles"]) for i, h in enumerate(meta["history"])]:
        if _outside(points, H, W):
            raise SessionFileError(f"{folder / SESSION_FILE} has {name} outside the {W}x{H} image of this generator")

    def max_elements(name: str) -> int:  # the largest array of each kind a session of G holds; 0: none of that name
        m = _ARRAY_NAME.fullmatch(name)
        if m is None or (m[1] is not None and int(m[1]) >= meta["steps"]):
            return 0
        if "_method_" in name:  # per handle: a template of at most 512 channels x 9 samples
            return MAX_POINTS * METHOD_ELEMENTS_PER_HANDLE
        return H * W if name == "mask" else 2 * MAX_POINTS if name.endswith("handles_rc") else latent

    npz = folder / LATENT_FILE
    try:
        budget = MAX_NPZ_INFLATION * npz.stat().st_size + H * W + (16 << 20)
        arrays = read_npz(npz, max_elements=max_elements, max_bytes=min(MAX_ARCHIVE_BYTES, budget))
    except (FileFormatError, ValueError, OSError) as e:
        raise SessionFileError(str(e)) from None
    for name, array in arrays.items():
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise SessionFileError(f"{npz}: array {name} holds NaN or infinite values, which a saved session does not")
        if name.endswith("handles_rc") and _outside(array[..., ::-1], H, W):
            raise SessionFileError(f"{npz}: array {name} puts handles outside the {W}x{H} image of this generator")
    needed = ["ws0"] + [f"step{i}_{k}" for i in range(meta["steps"]) for k in ("free", "handles_rc")]
    missing = [n for n in needed if n not in arrays]
    if missing:
        raise SessionFileError(f"{folder / LATENT_FILE} lacks {', '.join(missing[:3])} for the {meta['steps']} steps "
                               f"of {folder / SESSION_FILE}")
    snapshots = []
    for i in range(meta["steps"]):
        adam = {key: torch.from_numpy(arrays[f"step{i}_adam_{key}"])
                for key in ("step", "exp_avg", "exp_avg_sq") if f"step{i}_adam_{key}" in arrays}
        snapshots.append({"free": torch.from_numpy(arrays[f"step{i}_free"]),
                          "handles_rc": torch.from_numpy(arrays[f"step{i}_handles_rc"]), "adam": adam})
        prefix = f"step{i}_method_"
        method = {key[len(prefix):]: _method_value(value) for key, value in arrays.items() if key.startswith(prefix)}
        if method:  # absent from sessions saved before methods kept their state: those continue only as a new segment
            snapshots[-1]["method"] = method
    history = [{**h, "loss": math.nan if h.get("loss") is None else h["loss"]} for h in meta["history"]]
    state = {"config": meta["config"], "handles": meta["handles"], "targets": meta["targets"],
             "ws0": torch.from_numpy(arrays["ws0"]),
             "mask": torch.from_numpy(arrays["mask"]) if "mask" in arrays else None,
             "history": history, "snapshots": snapshots, "settings": meta.get("settings")}
    try:
        return DragSession.from_state_dict(G, state, allow_import=trusted)
    except (TypeError, ValueError, KeyError, IndexError, RuntimeError) as e:
        raise SessionFileError(f"{folder} does not hold a session of this generator: {e}") from None


def _check_untrusted_config(config: dict, path: Path) -> None:
    """A session from elsewhere names a registered drag method and no file of this machine, or SessionFileError."""
    method = config.get("method", "draggan")
    try:
        cls = get_method(method, allow_import=False) if isinstance(method, str) else None
    except ValueError as e:
        raise SessionFileError(f"{path}: {e}") from None
    if cls is None:
        raise SessionFileError(f"{path}: its drag method is {method!r}, not a name")
    options = config.get("method_options") or {}
    named = sorted(k for k in cls.path_options if isinstance(options, dict) and options.get(k) is not None)
    if named:
        raise SessionFileError(f"{path}: a session from elsewhere cannot name a file of this machine "
                               f"(method_options.{', method_options.'.join(named)}); the method's files come from "
                               "the model registry or the models folder")
