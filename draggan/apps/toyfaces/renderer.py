"""A procedural domain of cartoon faces with exact ground truth.

Each face is a vector of continuous parameters (`PARAMS`: head pose and shape, eyes, gaze, nose,
mouth, colours). `render(params, resolution)` draws a batch of them with anti-aliased edges
(coverage of a one-pixel ramp across each shape's signed distance), and `landmarks(params,
resolution)` gives the named points of `LANDMARKS` in the project's (x, y) pixel convention
(origin at the centre of the top-left pixel). Everything is batched torch arithmetic, so it is
deterministic, fast (thousands of 64-px images a second on one core) and differentiable in the
parameters.

Geometry lives in a head frame: `u` to the face's right-hand side of the image, `v` down, both in
units of the head's vertical radius, rotated by the head's roll and centred on the head.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Param:
    name: str
    low: float
    high: float
    doc: str


PARAMS: tuple[Param, ...] = (
    Param("head_x", 0.42, 0.58, "head centre x, fraction of the image width"),
    Param("head_y", 0.50, 0.58, "head centre y, fraction of the image height"),
    Param("head_size", 0.29, 0.35, "head's vertical radius, fraction of the image height"),
    Param("head_aspect", 0.72, 0.92, "head width / head height"),
    Param("head_roll", -0.30, 0.30, "head roll in radians (positive turns clockwise on screen)"),
    Param("eye_spacing", 0.40, 0.50, "eye centre's |u|, fraction of the head's half width"),
    Param("eye_height", -0.24, -0.08, "eye centres' v (negative = above the head centre)"),
    Param("eye_size", 0.14, 0.19, "eye's horizontal radius"),
    Param("eye_open", 0.30, 1.00, "eye's vertical / horizontal radius"),
    Param("gaze_x", -1.0, 1.0, "pupil offset to the right, fraction of the free room"),
    Param("gaze_y", -1.0, 1.0, "pupil offset downwards, fraction of the free room"),
    Param("nose_length", 0.12, 0.26, "from the eye line to the nose tip"),
    Param("mouth_gap", 0.10, 0.20, "from the nose tip to the upper lip"),
    Param("mouth_width", 0.22, 0.40, "mouth's half width, fraction of the head's half width"),
    Param("mouth_open", 0.0, 0.22, "height of the opening"),
    Param("mouth_curve", -0.10, 0.12, "drop of the mouth's centre below its corners (positive = smile)"),
    Param("hair_length", -0.2, 0.6, "v where the hair behind the head ends"),
    Param("fringe", -0.70, -0.45, "v of the fringe's lower edge"),
    Param("skin_tone", 0.0, 1.0, "0 = light to 1 = dark skin"),
    Param("hair_r", 0.05, 0.75, "hair colour, red"),
    Param("hair_g", 0.03, 0.60, "hair colour, green"),
    Param("hair_b", 0.02, 0.55, "hair colour, blue"),
    Param("bg_r", 0.15, 1.0, "background colour, red"),
    Param("bg_g", 0.15, 1.0, "background colour, green"),
    Param("bg_b", 0.15, 1.0, "background colour, blue"),
)
PARAM_NAMES: tuple[str, ...] = tuple(p.name for p in PARAMS)
_P = {name: i for i, name in enumerate(PARAM_NAMES)}

LANDMARKS: tuple[str, ...] = (
    "left_eye_center", "right_eye_center",  # image left / image right
    "left_eye_outer", "left_eye_inner", "right_eye_inner", "right_eye_outer",
    "left_pupil", "right_pupil",
    "nose_tip",
    "mouth_left", "mouth_right", "upper_lip", "lower_lip",
    "chin", "head_top", "jaw_left", "jaw_right",
)

_LIP = 0.035  # lip thickness (head units)
_HAIR_SCALE, _HAIR_SHIFT = 1.10, -0.05  # the hair ellipse around the head
_PUPIL = 0.55  # iris radius / eye radius
_SKIN_LIGHT = (0.98, 0.84, 0.72)
_SKIN_DARK = (0.42, 0.27, 0.18)
_IRIS = (0.12, 0.08, 0.06)
_LIPS = (0.72, 0.22, 0.24)
_MOUTH_INSIDE = (0.25, 0.03, 0.06)


def sample_params(n: int, seed: int | np.random.Generator = 0) -> torch.Tensor:
    """`n` faces drawn uniformly from the ranges of `PARAMS`, deterministic by seed: [n, len(PARAMS)]."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    low = np.array([p.low for p in PARAMS])
    high = np.array([p.high for p in PARAMS])
    return torch.from_numpy(low + (high - low) * rng.random((n, len(PARAMS)))).float()


def check_params(params: torch.Tensor) -> None:
    if params.ndim != 2 or params.shape[1] != len(PARAMS):
        raise ValueError(f"params must be [B, {len(PARAMS)}] (see PARAM_NAMES), got {list(params.shape)}")


class _Frame:
    """The head frame of a batch: pixel <-> (u, v) conversions."""

    def __init__(self, params: torch.Tensor, resolution: int):
        p = params
        self.res = resolution
        self.cx = p[:, _P["head_x"]] * resolution - 0.5  # pixel centres sit at integer coordinates
        self.cy = p[:, _P["head_y"]] * resolution - 0.5
        self.scale = p[:, _P["head_size"]] * resolution  # pixels per head unit
        self.cos = torch.cos(p[:, _P["head_roll"]])
        self.sin = torch.sin(p[:, _P["head_roll"]])

    def grid(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(u, v) of every pixel: two [B, H, W] tensors."""
        r = torch.arange(self.res, dtype=self.cx.dtype, device=self.cx.device)
        dx = r.view(1, 1, -1) - self.cx.view(-1, 1, 1)
        dy = r.view(1, -1, 1) - self.cy.view(-1, 1, 1)
        c, s, k = self.cos.view(-1, 1, 1), self.sin.view(-1, 1, 1), self.scale.view(-1, 1, 1)
        return (c * dx + s * dy) / k, (-s * dx + c * dy) / k

    def to_pixels(self, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Head-frame points [B, K] -> pixel (x, y) [B, K, 2]."""
        c, s, k = self.cos[:, None], self.sin[:, None], self.scale[:, None]
        x = self.cx[:, None] + k * (c * u - s * v)
        y = self.cy[:, None] + k * (s * u + c * v)
        return torch.stack([x, y], dim=-1)


def _col(p: torch.Tensor, name: str) -> torch.Tensor:
    return p[:, _P[name]]


def _layout(p: torch.Tensor) -> dict[str, torch.Tensor]:
    """Positions of the parts in the head frame, [B] each."""
    a = _col(p, "head_aspect")
    eye_u = _col(p, "eye_spacing") * a
    eye_v = _col(p, "eye_height")
    eye_r = _col(p, "eye_size")
    eye_ry = eye_r * _col(p, "eye_open")
    room = eye_r * (1 - _PUPIL)  # how far the iris may move before it leaves the eye
    nose_tip = eye_v + _col(p, "nose_length")
    mouth_open = _col(p, "mouth_open")
    mouth_v = nose_tip + _col(p, "mouth_gap") + mouth_open / 2 + _LIP  # the corners' v
    curve = _col(p, "mouth_curve")
    return dict(
        aspect=a, eye_u=eye_u, eye_v=eye_v, eye_r=eye_r, eye_ry=eye_ry,
        pupil_du=_col(p, "gaze_x") * room, pupil_dv=_col(p, "gaze_y") * room * _col(p, "eye_open"),
        nose_tip=nose_tip, mouth_v=mouth_v, mouth_w=_col(p, "mouth_width") * a, mouth_open=mouth_open,
        mouth_curve=curve,
    )


def landmarks(params: torch.Tensor, resolution: int) -> torch.Tensor:
    """The named points of `LANDMARKS` for a batch of faces: [B, len(LANDMARKS), 2] as (x, y) pixels."""
    check_params(params)
    L = _layout(params)
    zero = torch.zeros_like(L["eye_u"])
    jaw_u = L["aspect"] * torch.sqrt((1 - L["mouth_v"] ** 2).clamp_min(0))
    lip_mid = L["mouth_v"] + L["mouth_curve"]
    half = L["mouth_open"] / 2 + _LIP
    pts = [
        (-L["eye_u"], L["eye_v"]), (L["eye_u"], L["eye_v"]),
        (-L["eye_u"] - L["eye_r"], L["eye_v"]), (-L["eye_u"] + L["eye_r"], L["eye_v"]),
        (L["eye_u"] - L["eye_r"], L["eye_v"]), (L["eye_u"] + L["eye_r"], L["eye_v"]),
        (-L["eye_u"] + L["pupil_du"], L["eye_v"] + L["pupil_dv"]), (L["eye_u"] + L["pupil_du"], L["eye_v"] + L["pupil_dv"]),
        (zero, L["nose_tip"]),
        (-L["mouth_w"], L["mouth_v"]), (L["mouth_w"], L["mouth_v"]),
        (zero, lip_mid - half), (zero, lip_mid + half),
        (zero, zero + 1.0), (zero, zero + _HAIR_SHIFT - _HAIR_SCALE),
        (-jaw_u, L["mouth_v"]), (jaw_u, L["mouth_v"]),
    ]
    u = torch.stack([q[0] for q in pts], dim=1)
    v = torch.stack([q[1] for q in pts], dim=1)
    return _Frame(params, resolution).to_pixels(u, v)


def _ellipse_sdf(u, v, cu, cv, ru, rv):
    """First-order signed distance to an axis-aligned ellipse (negative inside), in head units."""
    du, dv = u - cu, v - cv
    f = (du / ru) ** 2 + (dv / rv) ** 2
    g = torch.sqrt((du / ru ** 2) ** 2 + (dv / rv ** 2) ** 2)
    return (f - 1) / (2 * g + 1e-6)


@functools.lru_cache(maxsize=64)
def _colour(rgb: tuple[float, float, float], device: torch.device) -> torch.Tensor:
    """A colour as a [1, 3, 1, 1] tensor on `device`, made once (a copy to a GPU each batch would wait for it)."""
    return torch.tensor(rgb).view(1, 3, 1, 1).to(device)


def _b(t: torch.Tensor) -> torch.Tensor:
    """[B] -> [B, 1, 1] for broadcasting over the image."""
    return t.view(-1, 1, 1)


def render(params: torch.Tensor, resolution: int = 64) -> torch.Tensor:
    """Draw a batch of faces: [B, 3, resolution, resolution] in [-1, 1]."""
    check_params(params)
    p = params.float()
    frame = _Frame(p, resolution)
    u, v = frame.grid()
    px = _b(frame.scale)  # pixels per head unit, to turn distances into pixels

    def cover(sdf):  # anti-aliased coverage of a shape from its signed distance (head units)
        return (0.5 - sdf * px).clamp(0, 1).unsqueeze(1)

    def paint(img, alpha, colour):
        return img + alpha * (colour - img)

    L = {k: _b(t) for k, t in _layout(p).items()}
    B = p.shape[0]
    bg = torch.stack([_col(p, "bg_r"), _col(p, "bg_g"), _col(p, "bg_b")], 1).view(B, 3, 1, 1)
    hair = torch.stack([_col(p, "hair_r"), _col(p, "hair_g"), _col(p, "hair_b")], 1).view(B, 3, 1, 1)
    t = _col(p, "skin_tone").view(B, 1, 1, 1)
    light, dark = _colour(_SKIN_LIGHT, p.device), _colour(_SKIN_DARK, p.device)
    skin = light + t * (dark - light)

    yy = torch.linspace(0, 1, resolution, device=p.device).view(1, 1, -1, 1)
    img = bg * (1 - 0.3 * yy)  # a soft vertical gradient
    a = L["aspect"]
    # Hair behind the head, cut at `hair_length`.
    hair_sdf = torch.maximum(_ellipse_sdf(u, v, 0, _HAIR_SHIFT, a * _HAIR_SCALE, _HAIR_SCALE), v - _b(_col(p, "hair_length")))
    img = paint(img, cover(hair_sdf), hair)
    # The head, slightly darker towards its rim.
    head_sdf = _ellipse_sdf(u, v, 0, 0, a, 1.0)
    rim = ((u / a) ** 2 + v ** 2).clamp(0, 1).unsqueeze(1)
    img = paint(img, cover(head_sdf), skin * (1 - 0.18 * rim))
    # The fringe over the forehead.
    fringe_sdf = torch.maximum(head_sdf, v - _b(_col(p, "fringe")) - 0.25 * (u / a) ** 2)
    img = paint(img, cover(fringe_sdf), hair)
    # Eyebrows.
    brow_v = L["eye_v"] - L["eye_ry"] - 0.09
    for side in (-1, 1):
        brow = torch.maximum((u - side * L["eye_u"]).abs() - L["eye_r"] * 1.1, (v - brow_v).abs() - 0.03)
        img = paint(img, cover(brow), hair * 0.8)
    # Eyes: white, then the iris clipped by the eye.
    white = torch.ones(1, 3, 1, 1, device=p.device) * 0.97
    iris = _colour(_IRIS, p.device)
    for side in (-1, 1):
        eu = side * L["eye_u"]
        eye = _ellipse_sdf(u, v, eu, L["eye_v"], L["eye_r"], L["eye_ry"])
        img = paint(img, cover(eye), white)
        ir = L["eye_r"] * _PUPIL
        pupil = _ellipse_sdf(u, v, eu + L["pupil_du"], L["eye_v"] + L["pupil_dv"], ir, ir)
        img = paint(img, cover(torch.maximum(pupil, eye)), iris)
    # Nose: a bridge and a rounded tip whose lowest point is the landmark.
    tip_r = 0.065
    bridge = torch.maximum(u.abs() - 0.04, torch.maximum(L["eye_v"] + 0.05 - v, v - L["nose_tip"] + tip_r))
    img = paint(img, cover(bridge), skin * 0.75)
    tip = _ellipse_sdf(u, v, 0, L["nose_tip"] - tip_r, 0.11, tip_r)
    img = paint(img, cover(tip), skin * 0.55)
    # Mouth: lips between two curves through the corners, the opening inside.
    w = L["mouth_w"]
    s = (u / w).clamp(-1, 1)
    bow = torch.sqrt((1 - s ** 2).clamp_min(0))
    mid = L["mouth_v"] + L["mouth_curve"] * (1 - s ** 2)
    half = L["mouth_open"] / 2
    lips = torch.maximum(torch.maximum(mid - (half + _LIP) * bow - v, v - mid - (half + _LIP) * bow), u.abs() - w)
    img = paint(img, cover(lips), _colour(_LIPS, p.device))
    inner = torch.maximum(torch.maximum(mid - half * bow - v, v - mid - half * bow), u.abs() - w + _LIP)
    img = paint(img, cover(inner), _colour(_MOUTH_INSIDE, p.device))
    return img * 2 - 1


def render_seeds(seeds, resolution: int = 64) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Images, parameters and landmarks of one face per seed (each seed alone decides its face)."""
    params = torch.cat([sample_params(1, int(s)) for s in seeds])
    return render(params, resolution), params, landmarks(params, resolution)


def images_per_second(resolution: int = 64, batch: int = 256, repeats: int = 5,
                      device: str | torch.device = "cpu") -> float:
    """Measured rendering speed of this process on `device` (for the model card, the gates and the tests)."""
    import time

    device = torch.device(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    params = sample_params(batch, 0).to(device)
    render(params, resolution)
    sync()
    t0 = time.perf_counter()
    for _ in range(repeats):
        render(params, resolution)
    sync()
    return batch * repeats / (time.perf_counter() - t0)


__all__ = ["LANDMARKS", "PARAMS", "PARAM_NAMES", "Param", "check_params", "images_per_second", "landmarks",
           "render", "render_seeds", "sample_params"]
