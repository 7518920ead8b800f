"""Downloading checkpoints into the cache: atomic, resumable, checked.

The cache directory is `$DRAGGAN_CACHE` when set, else `~/.cache/draggan`; every function takes
an explicit `cache_dir` too. A download goes to `<file>.part` and is renamed into place only when
complete and verified (size, and sha256 when known), so the cache never holds a half-written
checkpoint under its real name. An interrupted download leaves the `.part` file, and the next
attempt resumes it with an HTTP range request.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request
from pathlib import Path

from tqdm.auto import tqdm

CACHE_ENV = "DRAGGAN_CACHE"
CHUNK = 1 << 20  # bytes read at a time


class DownloadError(RuntimeError):
    """A download that failed; the message names the file to fetch by hand and where to put it."""


def default_cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "draggan").expanduser()


def sha256_of(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _by_hand(url: str, dest: Path) -> str:
    return f"Download {url} by hand and put it at {dest}"


def download_file(url: str, dest: str | os.PathLike, *, sha256: str | None = None, size: int | None = None,
                  timeout: float = 30.0, progress: bool = True) -> Path:
    """Download `url` to `dest` (atomically, resuming a previous `.part`), check it, return `dest`."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "draggan-research"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:  # the .part already holds the whole file
            response = None
        else:
            raise DownloadError(f"could not download {url}: HTTP {e.code} {e.reason}. {_by_hand(url, dest)}") from e
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise DownloadError(f"could not reach {url}: {reason}. {_by_hand(url, dest)}") from e
    if response is not None:
        with response:
            if offset and response.status != 206:  # the server ignored the range: start over
                offset = 0
            length = response.headers.get("Content-Length")
            total = offset + int(length) if length is not None else size
            mode = "ab" if offset else "wb"
            try:
                with open(part, mode) as f, tqdm(total=total, initial=offset, unit="B", unit_scale=True,
                                                 desc=dest.name, disable=not progress) as bar:
                    while block := response.read(CHUNK):
                        f.write(block)
                        bar.update(len(block))
            except (OSError, urllib.error.URLError, http.client.HTTPException) as e:
                raise DownloadError(f"the download of {url} broke off after {part.stat().st_size} bytes ({e}); "
                                    f"run it again to resume, or: {_by_hand(url, dest)}") from e
            got = part.stat().st_size
            if total is not None and got != total:
                raise DownloadError(f"the download of {url} broke off: {got} of {total} bytes; "
                                    f"run it again to resume, or: {_by_hand(url, dest)}")
    got = part.stat().st_size
    if size is not None and got != size:
        part.unlink()
        raise DownloadError(f"{url} gave {got} bytes, expected {size}; the partial file was removed. "
                            f"{_by_hand(url, dest)}")
    if sha256 is not None:
        digest = sha256_of(part)
        if digest != sha256.lower():
            part.unlink()
            raise DownloadError(f"{url} has sha256 {digest}, expected {sha256}; the file was removed. "
                                f"{_by_hand(url, dest)}")
    os.replace(part, dest)
    return dest
