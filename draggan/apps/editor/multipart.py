"""The files of a `multipart/form-data` body (RFC 7578), found in one pass and bounded in number.

The standard library's email parser builds a message object per part and rescans the body for each: 10 MB
of tiny parts cost it about 70 s of CPU. A saved session is at most three files, so this parser walks the
body with `bytes.find` from one boundary to the next and refuses the body as soon as it holds more than
`max_parts` parts, or a part whose headers are longer than `max_header_bytes`; what it returns is the
files (the parts that carry a file name), by name.
"""

from __future__ import annotations

import re

from draggan.apps.editor.errors import EditorError

_BOUNDARY = re.compile(r'boundary=(?:"([^"]{1,200})"|([^\s;"]{1,200}))', re.IGNORECASE)
_FILENAME = re.compile(rb'filename=(?:"([^"]*)"|([^\s;]+))', re.IGNORECASE)


def multipart_files(body: bytes, content_type: str, *, max_parts: int = 8,  # parts of one body
                    max_header_bytes: int = 8192,  # header bytes of one part
                    ) -> dict[str, bytes]:
    """File name -> bytes of the file parts of a multipart body; an EditorError if it is malformed or holds
    more than `max_parts` parts."""
    m = _BOUNDARY.search(content_type)
    if m is None:
        raise EditorError("a multipart upload without its boundary")
    delimiter = b"--" + (m[1] or m[2]).encode("latin-1")
    at = body.find(delimiter)
    if at < 0:
        raise EditorError("the multipart upload holds no part")
    files: dict[str, bytes] = {}
    parts = 0
    while True:
        at += len(delimiter)
        if body[at:at + 2] == b"--":  # the closing delimiter
            break
        parts += 1
        if parts > max_parts:
            raise EditorError(f"the multipart upload holds more than {max_parts} parts; a saved session is at most 3 "
                              "files")
        head_end = body.find(b"\r\n\r\n", at, at + max_header_bytes)
        if head_end < 0:
            raise EditorError("a part of the multipart upload has no end to its headers (or headers of more than "
                              f"{max_header_bytes} bytes)")
        following = body.find(b"\r\n" + delimiter, head_end + 4)
        if following < 0:
            raise EditorError("the multipart upload is cut short (a part without its closing boundary)")
        headers = body[at:head_end]
        lines = headers.split(b"\r\n")
        disposition = next((line for line in lines if line.lower().startswith(b"content-disposition:")), b"")
        found = _FILENAME.search(disposition)
        name = b"" if found is None else found[1] if found[1] is not None else found[2]
        if name:  # a form field without a file is not a file of the session
            files[name.decode("utf-8", "replace")] = body[head_end + 4:following]
        at = following + 2
    if not files:
        raise EditorError("no files in the upload")
    return files
