"""The paper's evaluation protocols: landmark manipulation (Table 1), paired image reconstruction (Table 2) and
tracking accuracy, with trackers behind one interface, landmark detectors, FID and metrics.

    from eval import landmark_manipulation, load_landmark_detector
    r = landmark_manipulation(G, load_landmark_detector("toyfaces"), DragConfig.for_generator(G), num_pairs=3)

The names below are imported on first use, so that `eval.configs` (which every script imports) stays light.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "landmark_manipulation": "eval.landmarks", "LandmarkManipulationResult": "eval.landmarks",
    "detection_rate": "eval.landmarks",
    "paired_reconstruction": "eval.paired", "PairedResult": "eval.paired",
    "tracking_accuracy": "eval.tracking", "TrackingResult": "eval.tracking",
    "make_tracker": "eval.trackers", "Tracker": "eval.trackers", "TrackResult": "eval.trackers",
    "load_landmark_detector": "eval.detectors",
    "make_flow": "eval.flow",
    "fid": "eval.fid", "load_fid_inception": "eval.fid",
    "run_evaluation": "eval.run",
    "WeightsUnavailable": "draggan.weights",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'eval' has no attribute {name!r}")
