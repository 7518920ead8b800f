"""Real photos into the generator: LPIPS projection into W / W+ (Karras et al. 2020), pivotal tuning
(Roich et al. 2022), and image loading for a given generator."""

from inversion.images import ImageLoadError, load_image
from inversion.lpips_loss import LPIPSWeightsError, load_lpips
from inversion.projector import ProjectionResult, apply_noise, project
from inversion.pti import TuningResult, pivotal_tune

__all__ = ["ImageLoadError", "LPIPSWeightsError", "ProjectionResult", "TuningResult", "apply_noise", "load_image",
           "load_lpips", "pivotal_tune", "project"]
