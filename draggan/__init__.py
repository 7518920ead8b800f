"""DragGAN: interactive point-based manipulation on the generative image manifold.

Pan et al., "Drag Your GAN: Interactive Point-based Manipulation on the Generative Image
Manifold", SIGGRAPH 2023. This package holds the StyleGAN2 generator, safe checkpoint loading,
the model registry, the drag session and the drag methods behind one contract:

    G = load_generator("toy-faces-64")                 # registered name, path or URL
    ws = initial_latent(G, seed=0, truncation_psi=0.7)  # W+ latent [1, num_ws, w_dim]
    session = DragSession(G, ws, [(32, 40)], [(32, 44)])  # the library's default: FreeDrag, G's settings
    result = session.run()                              # DragResult: image, ws, handles, history, done
    # DragConfig.preset("paper") or DragConfig.preset("official"): DragGAN itself; draggan.methods: the others
"""

from draggan.threads import quiet_openmp  # first: OpenMP reads its wait policy once, when torch loads (see there)

quiet_openmp()

from draggan.checkpoint import CheckpointError, save_generator  # noqa: E402
from draggan.download import DownloadError
from draggan.latents import initial_latent
from draggan.loading import load_generator, resolve_device
from draggan.methods import (
           DragMethod,
           StepOutput,
           available,
           get_method,
           register_method,
)
from draggan.networks import Generator
from draggan.point_tracker import PointTracker, TrackingStep
from draggan.registry import MODELS
from draggan.session import DragResult, DragSession, DragState
from draggan.session_io import load_session, save_run, save_session
from draggan.settings import DragConfig, resolve_drag, settings_record
from draggan.stall import stall
from draggan.timeline import DragTimeline

__all__ = ["MODELS", "CheckpointError", "DownloadError", "DragConfig", "DragResult", "DragSession", "DragState",
           "Generator", "initial_latent", "load_generator", "load_session", "resolve_device", "save_generator",
           "save_session", "stall"]
__all__ += ["DragTimeline", "PointTracker", "TrackingStep", "save_run"]  # the timeline of an edit, the tracker hook
__all__ += ["DragMethod", "StepOutput", "available", "get_method", "register_method",  # methods as plug-ins
            "resolve_drag", "settings_record"]  # the settings of a run, and where each came from
