"""Reading images and masks from untrusted files and uploads, under the limits of `draggan.limits`.

Every picture the project decodes comes through here (photos to invert, the editor's uploads and
masks, the command line's masks). The size comes from the file's header, before anything is decoded:
an image of more than MAX_IMAGE_PIXELS pixels, or a mask whose size is not the image's, is refused
at the cost of reading its header. Only the decoders of IMAGE_FORMATS are used. A JPEG larger than
asked for can be decoded at 1/2, 1/4 or 1/8 scale (`reduce_to`), which never allocates the full size.

Masks: white or painted (any channel >= 128) and opaque (alpha >= 128) = allowed to move.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from draggan.limits import IMAGE_FORMATS, MAX_IMAGE_PIXELS


class ImageError(ValueError):
    """A file or upload that is not a readable image, or one outside the limits; the message says which."""


_UNREADABLE = (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError)


def _describe(source) -> str:
    return "the upload" if isinstance(source, (bytes, bytearray)) else str(source)


def open_image(source: bytes | str | os.PathLike, *, what: str | None = None,
               max_pixels: int = MAX_IMAGE_PIXELS,  # refused above this many pixels (after `reduce_to`)
               size: tuple[int, int] | None = None,  # the (width, height) it must have, checked first
               reduce_to: int | None = None) -> Image.Image:  # a JPEG above this many pixels is decoded smaller
    """The image in `source` (bytes or a path), opened but not decoded, its header checked against the limits;
    `img.info["header_size"]` keeps the (width, height) of the header when a JPEG is decoded smaller."""
    what = what or _describe(source)
    if isinstance(source, (bytes, bytearray)):
        if not source:
            raise ImageError(f"{what} is empty")
        fp = io.BytesIO(source)
    else:
        if not Path(source).is_file():
            raise ImageError(f"no such image file: {source}")
        fp = source
    try:
        with warnings.catch_warnings():  # PIL's own warning: the limits here are lower and come next
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(fp, formats=IMAGE_FORMATS)
    except Image.DecompressionBombError:  # above twice PIL's limit, so above ours
        raise ImageError(f"{what} has more than {max_pixels / 1e6:g} million pixels, the most accepted") from None
    except _UNREADABLE:
        raise ImageError(f"{what} could not be read as an image: not an image of a known format "
                         f"({', '.join(IMAGE_FORMATS)})") from None
    w, h = img.size
    img.info["header_size"] = (w, h)
    if size is not None and (w, h) != tuple(size):
        img.close()
        raise ImageError(f"{what} is {w}x{h}, the image is {size[0]}x{size[1]}")
    if reduce_to is not None and w * h > reduce_to and img.format == "JPEG":
        factor = int(np.ceil(np.sqrt(w * h / reduce_to)))
        img.draft("RGB", (w // factor, h // factor))  # the decoder scales down by 2, 4 or 8 while it reads
    if img.size[0] * img.size[1] > max_pixels:
        img.close()
        raise ImageError(f"{what} is {w}x{h} pixels; at most {max_pixels / 1e6:g} million are accepted")
    return img


def decode_image(source: bytes | str | os.PathLike, *, what: str | None = None, max_pixels: int = MAX_IMAGE_PIXELS,
                 size: tuple[int, int] | None = None, reduce_to: int | None = None) -> Image.Image:
    """`open_image`, then decoded (a truncated or corrupt file is an ImageError naming it)."""
    img = open_image(source, what=what, max_pixels=max_pixels, size=size, reduce_to=reduce_to)
    try:
        img.load()
    except _UNREADABLE:
        img.close()
        raise ImageError(f"{what or _describe(source)} could not be read as an image: it is truncated or corrupt") from None
    return img


def read_mask(source: bytes | str | os.PathLike, size: tuple[int, int], *, what: str | None = None) -> np.ndarray:
    """A mask image of exactly `size` = (width, height) as a boolean [height, width] array (True = may move)."""
    what = what or ("the mask" if isinstance(source, (bytes, bytearray)) else f"the mask {source}")
    with decode_image(source, what=what, size=size) as img:
        rgba = np.asarray(img.convert("RGBA"))
    return (rgba[..., 3] >= 128) & (rgba[..., :3].max(axis=2) >= 128)


def load_mask(path: str | os.PathLike, size: tuple[int, int]) -> np.ndarray:
    """`read_mask` of a mask file for an image of `size` = (height, width), the order of the array it returns."""
    return read_mask(path, (size[1], size[0]))
