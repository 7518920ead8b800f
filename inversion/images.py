"""Loading a photo for a generator: any image PIL opens, oriented, RGB, cropped or padded to size.

EXIF orientation is applied; RGBA and LA are composited over white, grayscale and palette images
are converted, 16-bit images are scaled to 8 bits. The image is scaled so that it covers
(`fit='crop'`, then centre-cropped) or fits inside (`fit='pad'`, then padded with mid grey) the
generator's `height` x `width`, non-square included.
Images above `max_pixels` are reduced, with a warning: JPEGs while they are decoded (at 1/2, 1/4 or
1/8 scale), other formats after. The file is read through `draggan.image_io`, so its size is checked
from its header against `draggan.limits.MAX_IMAGE_PIXELS` before anything is decoded.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from draggan.image_io import ImageError, decode_image, open_image
from draggan.limits import PHOTO_PIXELS

MIN_SIDE = 8  # smaller images carry too little to invert
ImageLoadError = ImageError  # the file is missing, unreadable, not an image, too large, or unusable


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if arr.max() > 255 or img.mode.startswith("I;16") else 255.0
        img = Image.fromarray(np.clip(arr / peak * 255.0 + 0.5, 0, 255).astype(np.uint8), mode="L")
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    return img.convert("RGB")


def load_image(path: str | os.PathLike, height: int, width: int | None = None, *, fit: str = "crop",
               max_pixels: int = PHOTO_PIXELS, as_pil: bool = False):
    """The image at `path` as [1, 3, height, width] in [-1, 1] (width defaults to height).

    `fit='none'` with `as_pil=True` returns the oriented RGB image itself (any size).
    """
    width = height if width is None else width
    if fit not in ("crop", "pad") and not (fit == "none" and as_pil):
        raise ValueError(f"fit must be 'crop' or 'pad', got {fit!r}")
    path = Path(path)
    with decode_image(path, reduce_to=max_pixels) as img:
        w0, h0 = img.info["header_size"]
        if w0 * h0 > max_pixels:
            warnings.warn(f"{path} is {w0}x{h0} pixels; reading it reduced (max_pixels={max_pixels})")
            factor = int(np.ceil(np.sqrt(img.size[0] * img.size[1] / max_pixels)))
            if factor > 1:  # not a JPEG, or not reduced enough while decoded
                img = img.reduce(factor)
        img = _to_rgb(ImageOps.exif_transpose(img))
    if min(img.size) < MIN_SIDE:
        raise ImageLoadError(f"{path} is {img.size[0]}x{img.size[1]} pixels; at least {MIN_SIDE} px a side are needed")
    w, h = img.size
    if fit == "none" and as_pil:
        return img
    if fit == "crop":
        s = max(width / w, height / h)
        img = img.resize((max(width, round(w * s)), max(height, round(h * s))), Image.LANCZOS)
        left, top = (img.size[0] - width) // 2, (img.size[1] - height) // 2
        img = img.crop((left, top, left + width, top + height))
    else:
        s = min(width / w, height / h)
        img = img.resize((max(1, round(w * s)), max(1, round(h * s))), Image.LANCZOS)
        canvas = Image.new("RGB", (width, height), (128, 128, 128))
        canvas.paste(img, ((width - img.size[0]) // 2, (height - img.size[1]) // 2))
        img = canvas
    arr = torch.from_numpy(np.asarray(img, dtype=np.float32).copy()).permute(2, 0, 1)[None]
    return arr / 127.5 - 1


def align_face(path: str | os.PathLike, landmarks, size: int, *, max_pixels: int = PHOTO_PIXELS) -> torch.Tensor:
    """FFHQ-style alignment (Karras et al. 2019, the FFHQ dataset's recipe): [1, 3, size, size] in [-1, 1].

    `landmarks` are four (x, y) points in the photo's pixels: left eye centre, right eye centre, left
    mouth corner, right mouth corner (left = image left). The crop is the oriented square that FFHQ
    derives from the eye-to-eye and eye-to-mouth vectors, so faces land where FFHQ models expect them.
    """
    pts = np.asarray(landmarks, dtype=np.float64)
    if pts.shape != (4, 2) or not np.isfinite(pts).all():
        raise ValueError("face alignment needs four (x, y) points: left eye, right eye, left and right mouth corners")
    eye_l, eye_r, mouth_l, mouth_r = pts
    eye_avg, mouth_avg = (eye_l + eye_r) / 2, (mouth_l + mouth_r) / 2
    eye_to_eye, eye_to_mouth = eye_r - eye_l, mouth_avg - eye_avg
    x = eye_to_eye - np.flipud(eye_to_mouth) * [-1, 1]
    norm = np.hypot(*x)
    if norm < 1e-6:
        raise ValueError("the face landmarks are degenerate (all at one point?)")
    x = x / norm * max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    y = np.flipud(x) * [-1, 1]
    c = eye_avg + eye_to_mouth * 0.1
    quad = np.stack([c - x - y, c - x + y, c + x + y, c + x - y])  # top-left, bottom-left, bottom-right, top-right
    full = load_image(path, 0, 0, fit="none", max_pixels=max_pixels, as_pil=True)
    with open_image(path) as raw:  # the displayed size, to rescale the points if the photo was reduced
        w0, h0 = raw.size
        if raw.getexif().get(0x0112, 1) in (5, 6, 7, 8):
            w0, h0 = h0, w0
    quad = quad * (full.size[0] / w0)
    img = full.transform((size, size), Image.QUAD, (quad + 0.5).flatten().tolist(), Image.BILINEAR)
    arr = torch.from_numpy(np.asarray(img, dtype=np.float32).copy()).permute(2, 0, 1)[None]
    return arr / 127.5 - 1
