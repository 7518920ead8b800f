"""A tab's session as a zip: what Save downloads, and what Load accepts back.

Save zips the files of a run folder (`scripts/drag.py`'s, plus the tuned generator of a photo) and leaves
the pictures out (the GIF first) when the zip would be larger than Load accepts. Load takes that zip, or
the files themselves; from a zip it reads only the files a session is rebuilt from, each within its own
limit as its directory declares it (`session.json` within the JSON limit, the others within
`max_session_bytes`) before any is inflated (`draggan.archives.read_zip`).
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Mapping
from pathlib import Path

from draggan.apps.editor.errors import EditorError
from draggan.apps.editor.values import megabytes
from draggan.archives import read_zip
from draggan.files import FileFormatError
from draggan.limits import MAX_JSON_BYTES, LimitError
from draggan.session_io import LATENT_FILE, SESSION_FILE, TUNED_GENERATOR_FILE

SAVED_FILES = (SESSION_FILE, LATENT_FILE, TUNED_GENERATOR_FILE, "before.png", "after.png", "drag.gif")
SESSION_FILES = (SESSION_FILE, LATENT_FILE, TUNED_GENERATOR_FILE)  # what a session is rebuilt from
OPTIONAL_FILES = ("drag.gif", "after.png", "before.png")  # left out of Save's zip, in this order, to fit the limit


def zip_saved_folder(folder: Path, limit: int) -> tuple[bytes, list[str]]:
    """The zip of a saved folder, no larger than `limit` (what Load accepts): the pictures (the GIF first) are
    left out of it when the session would not fit otherwise. Returns (zip, names left out)."""
    names = [n for n in SAVED_FILES if (folder / n).is_file()]
    optional = [n for n in OPTIONAL_FILES if n in names]
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


def uploaded_session_files(files: Mapping[str, bytes], *, max_session_bytes: int) -> dict[str, bytes]:
    """The files of an uploaded session by base name (a zip's members, or the files as sent), with
    `session.json` and `latent.npz` among them; else an EditorError."""
    files = dict(files)
    if len(files) == 1 and next(iter(files)).lower().endswith(".zip"):
        try:
            files = read_zip(next(iter(files.values())), names=SESSION_FILES, max_bytes=2 * max_session_bytes,
                             max_member_bytes={SESSION_FILE: MAX_JSON_BYTES, LATENT_FILE: max_session_bytes,
                                               TUNED_GENERATOR_FILE: max_session_bytes},
                             source="the uploaded zip")
        except (FileFormatError, LimitError) as e:
            raise EditorError(str(e)) from None
    files = {Path(k).name: v for k, v in files.items()}
    missing = [n for n in (SESSION_FILE, LATENT_FILE) if n not in files]
    if missing:
        raise EditorError(f"a saved session needs {SESSION_FILE} and {LATENT_FILE}; missing: {', '.join(missing)}")
    return {k: v for k, v in files.items() if k in SESSION_FILES}
