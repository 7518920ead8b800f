"""DragGAN: interactive point-based manipulation on the generative image manifold.

Pan et al., "Drag Your GAN: Interactive Point-based Manipulation on the Generative Image
Manifold", SIGGRAPH 2023. This package holds the StyleGAN2 generator, safe checkpoint loading,
the model registry and the drag editor.
"""

from draggan.checkpoint import CheckpointError, save_generator
from draggan.download import DownloadError
from draggan.loading import load_generator, resolve_device
from draggan.networks import Generator

__all__ = ["CheckpointError", "DownloadError", "Generator", "load_generator", "resolve_device", "save_generator"]
