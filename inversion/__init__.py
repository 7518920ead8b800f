"""Real photos into the generator: LPIPS projection into W / W+ (Karras et al. 2020), pivotal tuning
(Roich et al. 2022), and image loading for a given generator.

    target = load_image("photo.png", G.img_height, G.img_width)   # [1, 3, H, W] in [-1, 1]
    inv = invert_image(G, target, InversionSettings(loss="mse"))   # projection, then pivotal tuning
    inv["G"], inv["ws"]                                            # the tuned generator and the pivot latent
"""

from __future__ import annotations

import importlib

# Imported on first use, so that `inversion.configs` (which every script's schema registration imports) loads
# no inversion machinery.
_EXPORTS = {
    "InversionSettings": "inversion.configs", "PTISettings": "inversion.configs",
    "ImageLoadError": "inversion.images", "load_image": "inversion.images",
    "LPIPSWeightsError": "inversion.lpips_loss", "load_lpips": "inversion.lpips_loss",
    "ProjectionResult": "inversion.projector", "apply_noise": "inversion.projector", "project": "inversion.projector",
    "TuningResult": "inversion.pti", "pivotal_tune": "inversion.pti",
    "invert_image": "inversion.run", "load_inversion": "inversion.run",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'inversion' has no attribute {name!r}")
