"""The masked-drag measure: does a mask around the moving part let it move, and hold the rest still?

Pan et al. 2023 give the drag a mask of the region allowed to move; features outside it are held at
those of the first image. Measured here on the toy-faces domain, where a landmark detector
(`draggan.apps.toyfaces.detector`) says where every part of the face is: for each face, one landmark is
dragged `offset` pixels, once without a mask and once with a disc of `mask_radius` pixels around the
handle and its target as the movable region (and around the landmarks `also` that move with it, at their
start and moved by `offset`: on the toy faces both eyes share one height, so moving one eye alone is
outside the domain). Reported per face and on average: how far the dragged
landmark (re-detected) ends from its target, how far the landmarks outside the disc moved, and the mean pixel
change outside the disc (`eval.locality`; the same region for both drags).
The mask works when the masked drag ends within 20 % of the unmasked drag's distance to the target
(`reach_ratio` <= 1.2) while the landmarks outside move at most half as much (`outside_ratio` <= 0.5).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from draggan.apps.toyfaces.renderer import LANDMARKS
from draggan.latents import latents_from_seeds, synthesize
from draggan.networks import Generator
from draggan.session import DragSession
from draggan.settings import DragConfig
from eval.locality import edit_locality


def disc_mask(size: tuple[int, int], centres_xy: Sequence[Sequence[float]], radius: float) -> np.ndarray:
    """[H, W] bool: True (movable) within `radius` pixels of any of `centres_xy` ((x, y) pixels)."""
    yy, xx = np.mgrid[0:size[0], 0:size[1]]
    m = np.zeros(size, dtype=bool)
    for x, y in centres_xy:
        m |= (xx - x) ** 2 + (yy - y) ** 2 <= radius ** 2
    return m


@dataclass
class MaskedDragResult:
    landmark: str  # the dragged landmark
    also: tuple[str, ...]  # landmarks whose discs are movable too
    offset: tuple[float, float]  # (dx, dy) of the drag, pixels
    mask_radius: float
    num_faces: int
    dist_unmasked: float  # mean distance of the re-detected landmark to its target after the unmasked drag, px
    dist_masked: float  # the same with the mask
    dist_start: float  # the drag's length, px
    outside_unmasked: float  # mean motion of the landmarks outside the mask, unmasked drag, px
    outside_masked: float  # the same with the mask
    reach_ratio: float  # dist_masked / dist_unmasked (goal <= 1.2)
    outside_ratio: float  # outside_masked / outside_unmasked (goal <= 0.5)
    steps_unmasked: float
    steps_masked: float
    seconds: float
    faces: list[dict] = field(default_factory=list)
    change_outside_unmasked: float = float("nan")  # mean pixel change outside the mask ([0, 1] images), unmasked drag
    change_outside_masked: float = float("nan")  # the same with the mask

    @property
    def passed(self) -> bool:
        return self.reach_ratio <= 1.2 and self.outside_ratio <= 0.5


def masked_drag(G: Generator, detector, drag_config: DragConfig, *,
                seeds: Sequence[int] = range(8),  # faces
                landmark: str = "left_eye_center",  # the dragged landmark
                also: Sequence[str] = (),  # landmarks moving with it: their discs (start, start + offset) are movable
                offset: tuple[float, float] = (0.0, -3.0),  # (dx, dy) pixels of the drag
                mask_radius: float = 6.0,  # disc of the movable region around handle and target, pixels
                margin: float = 2.0,  # landmarks count as outside when this much beyond the disc
                truncation_psi: float = 0.7,
                max_steps: int | None = None,
                unmasked: list[dict] | None = None,  # the `faces` of an earlier result with the same faces and drag:
                ) -> MaskedDragResult:                # its unmasked drags are reused (a sweep of mask settings)
    """Drag `landmark` by `offset` on each face without and with a disc mask; see the module docstring."""
    k = LANDMARKS.index(landmark)
    unknown = [a for a in also if a not in LANDMARKS]
    if unknown:
        raise ValueError(f"unknown landmark(s) {unknown}: choose from {', '.join(LANDMARKS)}")
    others = [LANDMARKS.index(a) for a in also]
    t0 = time.perf_counter()
    ws = latents_from_seeds(G, list(seeds), truncation_psi)
    first = synthesize(G, ws).clamp(-1, 1)  # [F, 3, H, W]
    before = detector(first).landmarks  # [F, L, 2]
    size = (G.img_height, G.img_width)
    faces = []
    for i, seed in enumerate(seeds):
        handle = before[i, k].tolist()
        target = [handle[0] + offset[0], handle[1] + offset[1]]
        centres = [handle, target]
        for j in others:
            start = before[i, j].tolist()
            centres += [start, [start[0] + offset[0], start[1] + offset[1]]]
        mask = disc_mask(size, centres, mask_radius)
        lm = before[i]
        far = torch.ones(len(lm), dtype=torch.bool)
        for c in centres:
            far &= torch.linalg.norm(lm - torch.tensor(c), dim=1) > mask_radius + margin
        row = dict(seed=int(seed), outside=[LANDMARKS[j] for j in torch.nonzero(far).flatten().tolist()])
        runs = [("unmasked", None), ("masked", mask)]
        if unmasked is not None:
            if unmasked[i]["seed"] != row["seed"] or unmasked[i]["outside"] != row["outside"]:
                raise ValueError("`unmasked` holds other faces, or their outside landmarks differ (another `also`, "
                                 "radius or offset): its unmasked drags cannot be reused")
            row.update({key: v for key, v in unmasked[i].items() if key.endswith("_unmasked")})
            runs = runs[1:]
        for name, m in runs:
            session = DragSession(G, ws[i:i + 1], [handle], [target], mask=m, config=dataclasses.replace(drag_config))
            result = session.run(max_steps=max_steps)
            edited = result.image.clamp(-1, 1)
            after = detector(edited).landmarks[0]
            row[f"change_outside_{name}"] = edit_locality(first[i:i + 1], edited, mask).change_outside
            row[f"dist_{name}"] = float(torch.linalg.norm(after[k] - torch.tensor(target)))
            row[f"outside_{name}"] = float(torch.linalg.norm(after[far] - lm[far], dim=1).mean())
            row[f"tracked_{name}"] = float(result.history[-1].distances[0]) if result.history else float("nan")
            row[f"steps_{name}"] = len(result.history)
        faces.append(row)
    mean = lambda key: float(np.mean([f[key] for f in faces]))  # noqa: E731
    return MaskedDragResult(landmark=landmark, also=tuple(also), offset=tuple(offset), mask_radius=mask_radius,
                            num_faces=len(faces),
                            dist_unmasked=mean("dist_unmasked"), dist_masked=mean("dist_masked"),
                            dist_start=float(np.hypot(*offset)), outside_unmasked=mean("outside_unmasked"),
                            outside_masked=mean("outside_masked"),
                            reach_ratio=mean("dist_masked") / max(mean("dist_unmasked"), 1e-6),
                            outside_ratio=mean("outside_masked") / max(mean("outside_unmasked"), 1e-6),
                            steps_unmasked=mean("steps_unmasked"), steps_masked=mean("steps_masked"),
                            seconds=time.perf_counter() - t0, faces=faces,
                            change_outside_unmasked=mean("change_outside_unmasked"),
                            change_outside_masked=mean("change_outside_masked"))

