"""The toy-faces domain: a procedural renderer with ground-truth landmarks, and a landmark detector."""

from draggan.apps.toyfaces.renderer import LANDMARKS, PARAM_NAMES, PARAMS, landmarks, render, render_seeds, sample_params

__all__ = ["LANDMARKS", "PARAMS", "PARAM_NAMES", "landmarks", "render", "render_seeds", "sample_params"]
