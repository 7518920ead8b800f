"""Real photos into the generator: LPIPS projection into W / W+ (Karras et al. 2020), pivotal tuning
(Roich et al. 2022), and image loading for a given generator.

    target = load_image("photo.png", G.img_height, G.img_width)   # [1, 3, H, W] in [-1, 1]
    inv = invert_image(G, target, InversionSettings(loss="mse"))   # projection, then pivotal tuning
    inv["G"], inv["ws"]                                            # the tuned generator and the pivot latent
"""

from inversion.configs import InversionSettings, PTISettings
from inversion.images import ImageLoadError, load_image
from inversion.lpips_loss import LPIPSWeightsError, load_lpips
from inversion.projector import ProjectionResult, apply_noise, project
from inversion.pti import TuningResult, pivotal_tune
from inversion.run import invert_image, load_inversion

__all__ = ["ImageLoadError", "InversionSettings", "LPIPSWeightsError", "PTISettings", "ProjectionResult",
           "TuningResult", "apply_noise", "invert_image", "load_image", "load_inversion", "load_lpips", "pivotal_tune",
           "project"]
