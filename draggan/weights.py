"""Finding the pretrained weights of auxiliary networks (LPIPS backbones, RAFT, Inception for FID, CoTracker).

Every lookup goes: an explicit path, then torch hub's cache (`torch.hub.get_dir()/checkpoints`,
where torchvision and torch.hub keep their downloads), then a download if allowed. When none works,
`WeightsUnavailable` says which file is missing and where to put it. Nothing here ever falls back
to random weights.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch


class WeightsUnavailable(FileNotFoundError):
    """A network's pretrained weights are not on this machine (and could not be downloaded)."""


def hub_checkpoint_path(filename: str) -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def find_weights(filename: str, url: str, *, path: str | os.PathLike | None = None, download: bool = False,
                 what: str = "", hash_prefix: str | None = None, setting: str | None = None) -> Path:
    """The local file of `filename` (downloading `url` into torch hub's cache if `download`, checked against
    `hash_prefix`, the start of its sha256, when given); `setting` names where a user can give the path."""
    label = f"{what} weights" if what else "weights"
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_file():
            raise WeightsUnavailable(f"{label} not found at {p} (expected {filename})")
        return p
    cached = hub_checkpoint_path(filename)
    if cached.is_file():
        return cached
    if download:
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(url, str(cached), hash_prefix=hash_prefix, progress=True)
            return cached
        except Exception as e:  # no network, a proxy, a truncated file...
            reason = f"download failed: {type(e).__name__}: {e}"
    else:
        reason = "not in the cache, and downloads are off (download_weights=true allows them)"
    where = f", or give its path as the `{setting}` setting" if setting else ""
    raise WeightsUnavailable(f"{label}: {filename} is missing ({reason}). Download {url} on a machine with "
                             f"internet and put it at {cached}{where}.")
