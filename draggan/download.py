"""Downloading checkpoints into the cache: a file is installed under its final name only when it is
complete and checked.

The cache directory is `$DRAGGAN_CACHE` when set, else `~/.cache/draggan`; every function takes an
explicit `cache_dir` too. A download of `<file>`:

- runs under an exclusive lock on `<file>.lock`, so that concurrent downloads of one file (threads or
  processes) are serialised: the second finds the file installed and checks it;
- refuses, before anything is sent, a URL whose file name is empty, `.` or `..` (it would name the cache
  folder itself, or its parent);
- writes `<file>.part` and renames it to `<file>` only when its length is proven (the server's
  Content-Length or Content-Range, the end of a chunked transfer, or the registered `size`) and its
  size and sha256 match what is registered; nothing is installed from an HTML answer (a login or error
  page served with 200), and no download grows past the registered `size`, or `max_bytes`
  (`draggan.limits.MAX_DOWNLOAD_BYTES` by default) when no size is registered: a Content-Length above it is
  refused before the body, a chunked body is cut there;
- removes the `.part` on every failure, except a transfer that broke off (cut, too slow, too long) from a
  server that named its version of the file (a strong ETag or a Last-Modified date): that `.part` stays,
  with the validator in `<file>.part.json`, and the next download resumes it with `Range` and `If-Range`,
  so that a server whose file changed meanwhile sends the whole new file (a 200) instead of the rest of it
  spliced onto the old part. A 206 must then say `Content-Range: bytes <part's length>-.../<the recorded
  length>`; a 416 counts as "already complete" only when its Content-Range gives the part's length as the
  file's; any other answer discards the `.part` and starts over once;
- follows redirects within one host (and from http to https), to another host only when the sha256 is
  known (the content is checked anyway), never from https to http;
- gives up after `timeout` seconds without data, after `max_seconds` in all, and when fewer than
  `min_rate` bytes a second arrived over the last `rate_window` seconds (the `.part` stays for a resume).

The cache key of a URL includes a hash of the whole URL (`url_cache_path`), so two URLs whose paths
end in the same file name never share a file; registered models keep their registry file names.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import logging
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from tqdm.auto import tqdm

from draggan.limits import MAX_DOWNLOAD_BYTES

log = logging.getLogger(__name__)

CACHE_ENV = "DRAGGAN_CACHE"
CHUNK = 1 << 20  # bytes read at a time


class DownloadError(RuntimeError):
    """A download that failed; the message names the file to fetch by hand and where to put it."""


class _StartOver(Exception):
    """The server's answer does not continue the `.part`: discard it and download from the start."""


class _BrokeOff(DownloadError):
    """The transfer stopped before the end (a cut, too slow, too long): the `.part` may be resumed."""


HTML_TYPES = ("text/html", "application/xhtml+xml")  # what a checkpoint never is: a login, error or consent page


def check_file_name(name: str, url: str) -> None:
    """Refuse a download whose file name is empty, `.` or `..` (in the URL, percent-decoded, or in `dest`)."""
    decoded = urllib.parse.unquote(name)
    if name in ("", ".", "..") or decoded in ("", ".", ".."):
        raise DownloadError(f"{url}: its file name is {name!r}, which names a folder, not a file; give the URL of "
                            "the file itself")


def default_cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "draggan").expanduser()


def url_cache_path(url: str, cache_dir: str | os.PathLike) -> Path:
    """Where the file of `url` is cached: `<cache>/url/<16 hex digits of sha256(url)>/<file name>` (a URL whose
    file name is empty, `.` or `..` is a DownloadError)."""
    path = urllib.parse.urlsplit(url).path
    name = path.rsplit("/", 1)[-1]
    check_file_name(name, url)
    return Path(cache_dir) / "url" / hashlib.sha256(url.encode()).hexdigest()[:16] / name


def sha256_of(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def check_file(path: str | os.PathLike, *, sha256: str | None = None, size: int | None = None,
               what: str | None = None, advice: str = "it is not that file (a partial or foreign file): delete it "
                                                        "and download again") -> Path:
    """`path` if its size and sha256 are those given (None = not checked), else a DownloadError ending in `advice`."""
    path = Path(path)
    what = what or str(path)
    got = path.stat().st_size
    if size is not None and got != size:
        raise DownloadError(f"{path} is {got} bytes, expected {size} for {what}; {advice}")
    if sha256 is not None:
        digest = sha256_of(path)
        if digest != sha256.lower():
            raise DownloadError(f"{path} has sha256 {digest}, expected {sha256} for {what}; {advice}")
    return path


def _by_hand(url: str, dest: Path) -> str:
    return f"Download {url} by hand and put it at {dest}"


@contextlib.contextmanager
def _exclusive(lock_path: Path, wait: float) -> Iterator[None]:
    """Hold an exclusive lock on `lock_path` (created; removed on release). A process that waited on a lock
    file that its holder removed meanwhile opens the new one instead."""
    import fcntl  # POSIX; the project's machines are Linux and macOS

    deadline = time.monotonic() + wait
    while True:
        f = open(lock_path, "a+b")  # noqa: SIM115 - closed below or on release
        try:
            while True:
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise DownloadError(f"another download holds {lock_path} for more than {wait:.0f} s; "
                                            "if none runs, delete that file") from None
                    time.sleep(0.05)
            try:
                same = os.fstat(f.fileno()).st_ino == os.stat(lock_path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
        except BaseException:
            f.close()
            raise
        f.close()  # the holder removed this lock file: take the new one
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock_path)
        f.close()


class _RedirectPolicy(urllib.request.HTTPRedirectHandler):
    """Redirects within one host; to another host only when the file's content is checked (sha256 known)."""

    def __init__(self, other_hosts: bool):
        self.other_hosts = other_hosts

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        old, new = urllib.parse.urlsplit(req.full_url), urllib.parse.urlsplit(urllib.parse.urljoin(req.full_url, newurl))
        if new.scheme not in ("http", "https") or (old.scheme == "https" and new.scheme == "http"):
            raise DownloadError(f"{req.full_url} redirects to {newurl}: refused (only http(s), never from https "
                                "to http)")
        if new.hostname != old.hostname:
            if not self.other_hosts:
                raise DownloadError(f"{req.full_url} redirects to another host ({new.hostname}); refused because "
                                    "the file's sha256 is not known to check what that host sends")
            log.info("%s redirects to %s (the file's sha256 is checked)", req.full_url, new.hostname)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _header_int(value: str | None, name: str, url: str) -> int | None:
    if value is None:
        return None
    if not re.fullmatch(r"\s*\d{1,18}\s*", value):
        raise DownloadError(f"{url}: the server sent {name}: {value!r}, not a byte count")
    return int(value)


def _content_range(value: str | None, url: str) -> tuple[int | None, int | None, int | None]:
    """(first, last, total) of a Content-Range header ('bytes 5-9/10' or 'bytes */10'); None where absent."""
    m = re.fullmatch(r"\s*bytes\s+(?:(\d{1,18})-(\d{1,18})|\*)/(\d{1,18}|\*)\s*", value or "")
    if m is None:
        raise DownloadError(f"{url}: the server answered a range request with Content-Range {value!r}")
    first, last, total = (None if g in (None, "*") else int(g) for g in m.groups())
    return first, last, total


def download_file(url: str, dest: str | os.PathLike, *, sha256: str | None = None, size: int | None = None,
                  timeout: float = 30.0,  # seconds without any data before giving up
                  max_seconds: float = 6 * 3600.0,  # longest a download may take in all
                  min_rate: float = 1024.0,  # bytes per second below which a download is given up...
                  rate_window: float = 60.0,  # ...measured over this many seconds
                  max_bytes: int = MAX_DOWNLOAD_BYTES,  # largest file accepted when no `size` is registered
                  progress: bool = True) -> Path:
    """Download `url` to `dest` (serialised by a lock, resuming a `.part`), check it, install it, return `dest`."""
    dest = Path(dest)
    if urllib.parse.urlsplit(url).scheme.lower() not in ("http", "https"):
        raise DownloadError(f"{url}: only http and https URLs are downloaded; a file that is already on this machine "
                            f"is copied by hand to {dest}")
    check_file_name(dest.name, url)
    check_file_name(urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1], url)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    record = dest.with_name(dest.name + ".part.json")  # the validator of the server's file that `part` began
    cap = size if size is not None else max_bytes
    with _exclusive(dest.with_name(dest.name + ".lock"), wait=max_seconds):
        if dest.is_file():  # installed meanwhile by another download, or put there by hand
            return check_file(dest, sha256=sha256, size=size, what=url)
        deadline = time.monotonic() + max_seconds
        try:
            for attempt in (0, 1):
                try:
                    _fetch(url, part, record, dest, sha256=sha256, size=size, cap=cap, timeout=timeout,
                           deadline=deadline, min_rate=min_rate, rate_window=rate_window, progress=progress)
                    break
                except _StartOver as e:
                    _discard(part, record)
                    if attempt:
                        raise DownloadError(f"{url}: {e}. {_by_hand(url, dest)}") from None
                    log.warning("%s: %s; starting over", url, e)
            check_file(part, sha256=sha256, size=size, what=url, advice=f"the download was removed. {_by_hand(url, dest)}")
        except _BrokeOff as e:
            if _validator(record) is not None and part.exists():
                raise DownloadError(f"{e}; run it again to resume, or: {_by_hand(url, dest)}") from None
            _discard(part, record)
            raise DownloadError(f"{e}; the server names no version of the file (ETag or Last-Modified), so the "
                                f"partial download cannot be resumed safely and was removed. {_by_hand(url, dest)}") from None
        except BaseException:
            _discard(part, record)
            raise
        os.replace(part, dest)
        record.unlink(missing_ok=True)
    return dest


def _discard(part: Path, record: Path) -> None:
    part.unlink(missing_ok=True)
    record.unlink(missing_ok=True)


def _validator(record: Path) -> dict | None:
    """{"if_range", "length"} recorded for a `.part`, or None (no record, or one without a usable validator)."""
    try:
        value = json.loads(record.read_text())
    except (OSError, ValueError):
        return None
    ok = isinstance(value, dict) and isinstance(value.get("if_range"), str) and value["if_range"] \
        and (value.get("length") is None or type(value.get("length")) is int)
    return value if ok else None


def _if_range(headers) -> str | None:
    """What `If-Range` may send back for this answer: a strong ETag, else its Last-Modified date, else None."""
    etag = (headers.get("ETag") or "").strip()
    if etag and not etag.startswith("W/") and len(etag) <= 200:
        return etag
    modified = (headers.get("Last-Modified") or "").strip()
    return modified if modified and len(modified) <= 100 else None


def _fetch(url: str, part: Path, record: Path, dest: Path, *, sha256: str | None, size: int | None, cap: int,
           timeout: float, deadline: float, min_rate: float, rate_window: float, progress: bool) -> None:
    """Bring `part` to the whole file (or raise); the length is proven, the content not yet checked."""
    resume = _validator(record) if part.exists() else None
    if part.exists() and resume is None:
        _discard(part, record)  # a part whose version of the file is unknown cannot be continued safely
    offset = part.stat().st_size if resume is not None else 0
    if size is not None and offset > size:
        raise _StartOver(f"the partial download is longer ({offset} bytes) than the file ({size})")
    request = urllib.request.Request(url, headers={"User-Agent": "draggan-research", "Accept-Encoding": "identity"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
        request.add_header("If-Range", resume["if_range"])
    opener = urllib.request.build_opener(_RedirectPolicy(other_hosts=sha256 is not None))
    try:
        response = opener.open(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        with e:
            if e.code == 416 and offset:
                total = _content_range(e.headers.get("Content-Range"), url)[2]
                if total == offset:
                    return  # the .part already holds the whole file
                raise _StartOver(f"the partial download ({offset} bytes) does not fit the file ({total} bytes)") from None
            raise DownloadError(f"could not download {url}: HTTP {e.code} {e.reason}. {_by_hand(url, dest)}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        reason = getattr(e, "reason", e)
        raise DownloadError(f"could not reach {url}: {reason}. {_by_hand(url, dest)}") from None
    with response:
        content_type = (response.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type in HTML_TYPES:
            raise DownloadError(f"{url} answered with an HTML page ({content_type}), not the file (a login, consent "
                                f"or error page?). {_by_hand(url, dest)}")
        length = _header_int(response.headers.get("Content-Length"), "Content-Length", url)
        if offset and response.status == 206:
            first, last, total = _content_range(response.headers.get("Content-Range"), url)
            if first != offset:
                raise _StartOver(f"asked for the bytes from {offset}, the server sent them from {first}")
            if resume.get("length") is not None and total != resume["length"]:
                raise _StartOver(f"the file is now {total} bytes, it was {resume['length']} when the part began")
            if length is not None and last is not None and length != last - first + 1:
                raise DownloadError(f"{url}: Content-Range {first}-{last} and Content-Length {length} disagree")
            expected = total if total is not None else (offset + length if length is not None else None)
        elif response.status in (200, 203):
            offset, expected = 0, length  # not resumed (or the file changed): start over
            validator = _if_range(response.headers)
            if validator is not None:
                record.write_text(json.dumps({"url": url, "if_range": validator, "length": length}))
            else:
                record.unlink(missing_ok=True)
        else:
            raise DownloadError(f"could not download {url}: HTTP {response.status}. {_by_hand(url, dest)}")
        if expected is not None and size is not None and expected != size:
            raise DownloadError(f"{url}: the server announces {expected} bytes, the registry says {size}. "
                                f"{_by_hand(url, dest)}")
        if expected is not None and expected > cap:
            raise DownloadError(f"{url}: the server announces {expected} bytes; at most {cap} are downloaded "
                                f"(max_bytes). {_by_hand(url, dest)}")
        expected = expected if expected is not None else size
        if expected is None and not response.chunked and sha256 is None:
            raise DownloadError(f"{url}: the server gives no length and none is registered, so a complete file "
                                f"cannot be told from a cut one. {_by_hand(url, dest)}")
        _receive(response, part, url, dest, append=bool(offset), expected=expected, cap=cap, deadline=deadline,
                 min_rate=min_rate, rate_window=rate_window, progress=progress)


def _receive(response, part: Path, url: str, dest: Path, *, append: bool, expected: int | None, cap: int,
             deadline: float, min_rate: float, rate_window: float, progress: bool) -> None:
    """Write the body into `part`, within the time, rate and size limits (a cut is a `_BrokeOff`)."""
    with open(part, "ab" if append else "wb") as f, tqdm(total=expected, initial=f.tell(), unit="B", unit_scale=True,
                                                           desc=dest.name, disable=not progress) as bar:
        window_start, window_bytes = time.monotonic(), 0
        try:
            while block := response.read1(CHUNK):
                f.write(block)
                bar.update(len(block))
                if f.tell() > cap:
                    raise DownloadError(f"the download of {url} passed {cap} bytes, the most accepted (max_bytes, or "
                                        f"the registered size); it was removed. {_by_hand(url, dest)}")
                now = time.monotonic()
                window_bytes += len(block)
                if now > deadline:
                    raise _BrokeOff(f"the download of {url} took too long (max_seconds)")
                if now - window_start >= rate_window:
                    if window_bytes < min_rate * (now - window_start):
                        raise _BrokeOff(f"the download of {url} is too slow ({window_bytes / (now - window_start):.0f} "
                                        f"B/s, min_rate {min_rate:.0f})")
                    window_start, window_bytes = now, 0
        except (OSError, urllib.error.URLError, http.client.HTTPException) as e:
            raise _BrokeOff(f"the download of {url} broke off after {f.tell()} bytes ({e})") from e
        got = f.tell()
    if expected is not None and got != expected:
        raise _BrokeOff(f"the download of {url} broke off: {got} of {expected} bytes")
