"""Saving and loading edit sessions: `session.json` (points, config, per-step history), `latent.npz` (start and
final latents, and the per-step optimiser and method snapshots for resume/roll-back) and `drag_config.yaml` (every
drag setting with its source, `draggan.settings`); `save_run` writes them with the pictures of the drag, as one run
folder (the CLI's and the editor's).

Loading reads untrusted files (a resumed run, a session uploaded to the editor): `session.json` is
checked for its structure (a history as long as its step count, at most MAX_DRAG_STEPS steps and
MAX_POINTS point pairs) and every array of `latent.npz` for its size from its header before it is
read (`draggan.files.read_npz`); a truncated or malformed file is a SessionFileError naming it. A session from
elsewhere (`trusted=False`: an upload to the editor) may name only registered drag methods and no file of this
machine (a method's path options, such as the latent transformer's weights).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from draggan.files import FileFormatError, atomic_write, read_json, read_npz
from draggan.limits import MAX_DRAG_STEPS, MAX_POINTS
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


def read_session_meta(path: str | os.PathLike) -> dict:
    """`session.json` (or the session folder holding it), checked for the structure `load_session` needs."""
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
    if problem:
        raise SessionFileError(f"{path} {problem}: not a saved drag session")
    return meta


METHOD_ELEMENTS_PER_HANDLE = 512 * 9  # the largest state array of a drag method, per handle (FreeDrag's template)


def _method_value(array: np.ndarray) -> Any:
    """A saved entry of a method's state: whole numbers and flags as Python values, anything else a tensor."""
    if array.ndim == 0 and array.dtype.kind in "biu":
        return array.item()
    return torch.from_numpy(array)


def load_session(folder: str | os.PathLike, G: Generator, *, trusted: bool = True) -> DragSession:
    """Rebuild a saved session at its last step; `rollback(k)` then returns to any earlier step. `trusted=False`
    (a session from elsewhere): its drag method must be a registered one, and it may name no file of this machine."""
    folder = Path(folder)
    meta = read_session_meta(folder)
    if not trusted:
        _check_untrusted_config(meta["config"], folder / SESSION_FILE)
    latent = G.num_ws * G.w_dim

    def max_elements(name: str) -> int:  # the largest array of each kind a session of G holds
        if "_method_" in name:  # per handle: a template of at most 512 channels x 9 samples
            return MAX_POINTS * METHOD_ELEMENTS_PER_HANDLE
        return G.img_height * G.img_width if name == "mask" else 2 * MAX_POINTS if name.endswith("handles_rc") \
            else latent

    try:
        arrays = read_npz(folder / LATENT_FILE, max_elements=max_elements)
    except (FileFormatError, ValueError) as e:
        raise SessionFileError(str(e)) from None
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
