"""Landmark detectors for the landmark protocols, pluggable by name.

A detector is a callable `detector(images [B, 3, H, W] in [-1, 1]) -> result` whose result has
`landmarks` ([B, K, 2] (x, y) pixels) and `detected` ([B, K] bool), with two attributes:
`landmark_names` (K names) and `point_sets` ({number of points: names}, the rows of Table 1).

`load_landmark_detector(spec)`:
- `toyfaces` (or None): the shipped toy-faces detector (17 landmarks; sets of 1, 5 and 17);
- a `.safetensors` path: toy-faces detector weights trained by `scripts/train_detector.py`;
- `face_alignment`: 68-point iBUG landmarks for real faces (FFHQ), through the `face-alignment`
  package (Bulat and Tzimiropoulos 2017), with sets of 1 (nose tip), 5 (outer eye corners, nose tip,
  mouth corners) and 68 points as in the paper's Table 1. It needs `pip install face-alignment` and
  its weights (2DFAN4 and the SFD face detector, fetched by the package into torch hub's cache);
  without them it says so (it is not available on this project's offline test machine);
- `package.module:factory`: any factory returning a detector as above.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import torch

from draggan.weights import WeightsUnavailable, hub_checkpoint_path

IBUG_NAMES = tuple(f"ibug_{i}" for i in range(68))
IBUG_POINT_SETS = {1: ("ibug_30",), 5: ("ibug_36", "ibug_45", "ibug_30", "ibug_48", "ibug_54"), 68: IBUG_NAMES}
FACE_ALIGNMENT_FILES = ("2DFAN4-cd938726ad.zip", "s3fd-619a316812.pth")


def _toy(path=None, device: str | torch.device = "cpu"):
    from draggan.apps.toyfaces.detector import load_detector
    from draggan.apps.toyfaces.renderer import LANDMARKS
    from eval.landmarks import POINT_SETS

    det = load_detector(path, device=device)
    det.landmark_names = LANDMARKS
    det.point_sets = POINT_SETS
    return det


@dataclass
class FaceLandmarks:
    landmarks: torch.Tensor  # [B, 68, 2]
    detected: torch.Tensor  # [B, 68] (a face found: all its points count as detected)


class FaceAlignmentDetector:
    landmark_names = IBUG_NAMES
    point_sets = IBUG_POINT_SETS

    def __init__(self, device: str = "cpu"):
        try:
            import face_alignment
        except ImportError as e:
            raise WeightsUnavailable("the face_alignment detector needs the face-alignment package "
                                     "(pip install face-alignment)") from e
        missing = [str(hub_checkpoint_path(f)) for f in FACE_ALIGNMENT_FILES if not hub_checkpoint_path(f).is_file()]
        if missing:
            raise WeightsUnavailable(f"the face_alignment detector's weights are missing: {', '.join(missing)} "
                                     "(create face_alignment.FaceAlignment once on a machine with internet and copy "
                                     "torch hub's checkpoints folder here)")
        self.fa = face_alignment.FaceAlignment(face_alignment.LandmarksType.TWO_D, device=device,
                                               face_detector="sfd")

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> FaceLandmarks:
        batch = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round()
        found = self.fa.get_landmarks_from_batch(batch)
        lms = torch.zeros(len(images), 68, 2)
        ok = torch.zeros(len(images), 68, dtype=torch.bool)
        for i, pts in enumerate(found):
            if pts is not None and len(pts) >= 68:
                lms[i] = torch.as_tensor(pts[:68, :2], dtype=torch.float32)
                ok[i] = True
        return FaceLandmarks(landmarks=lms, detected=ok)


def load_landmark_detector(spec: str | None = None, device: str = "cpu"):
    """The detector that `spec` names (see the module's docstring)."""
    if spec is None or spec == "toyfaces":
        return _toy(device=device)
    if spec == "face_alignment":
        return FaceAlignmentDetector(device)
    if spec.endswith(".safetensors"):
        return _toy(spec, device)
    if ":" in spec:
        module, factory = spec.split(":", 1)
        det = getattr(importlib.import_module(module), factory)()
        for attr in ("landmark_names", "point_sets"):
            if not hasattr(det, attr):
                raise ValueError(f"the detector from {spec} has no `{attr}` attribute")
        return det
    raise ValueError(f"unknown landmark detector {spec!r}: toyfaces, face_alignment, a .safetensors file of the "
                     "toy-faces detector, or module:factory")
