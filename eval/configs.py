"""Schemas of eval/ (`scripts/evaluate.py`, `scripts/model_gates.py`, `scripts/gpu_check.py`,
`scripts/drag_checks.py`, the `benchmark` and `tracker` groups), and `register_configs`, which registers every
schema of the project (the evaluation's on top of `inversion.configs.register_configs`). Dataclasses only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore

from draggan.configs import DragSettings
from draggan.registry import DEFAULT_MODEL


@dataclass
class TrackerConfig:
    name: str = "draggan_l1"  # see eval.trackers.TRACKERS
    weights: str | None = None  # RAFT: path of torchvision's weights file (default: torch hub's cache)


@dataclass
class BenchmarkConfig:
    name: str = "landmarks"  # landmarks, paired or tracking
    truncation_psi: float = 0.7
    num_points: list[int] = field(default_factory=lambda: [1, 5, 17])  # landmarks: point sets; tracking: the first
    fid: bool = True  # landmarks: FID of edits against the initial images (needs the FID Inception weights)
    flow: str = "dis"  # paired: dis, farneback, raft_small, raft_large
    flow_weights: str | None = None  # paired with RAFT: path of its weights
    paired_points: int = 32  # paired: flow vectors per pair
    perturb_rows: int = 6  # paired: W+ rows of w1 perturbed to make w2
    perturb_strength: float = 0.7  # paired: how far towards another latent
    min_flow: float = 2.0  # paired: smallest flow sampled, pixels
    lpips_net: str = "alex"  # paired: LPIPS backbone (needs torchvision's ImageNet weights)
    trackers: list[str] | None = None  # tracking: the trackers compared; None = every one of eval.trackers.TRACKERS


@dataclass
class EvaluateConfig:
    generator: str = DEFAULT_MODEL  # registered name, path or URL of a checkpoint
    drag: DragSettings = field(default_factory=DragSettings)
    benchmark: BenchmarkConfig = field(default_factory=BenchmarkConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    logger: Any = None  # draggan.loggers.LoggerConfig (the logger group)
    n_pairs: int = 10  # pairs of images per point set
    shard: str | None = None  # K/N: drag the pairs i with i % N == K (eval/shards.py); None: all, or torchrun's rank
    seed: int = 0  # the same seed gives the same table
    detector: str = "toyfaces"  # toyfaces, face_alignment (FFHQ), a toy detector .safetensors, or module:factory
    device: str = "auto"  # auto (CUDA, then MPS, then the CPU), cpu, cuda, cuda:N, mps: everything runs there
    threads: int | str | None = "auto"  # torch CPU threads: auto (draggan/threads.py), a number, or null (torch's)
    download_weights: bool = False  # allow downloading RAFT / Inception / LPIPS weights
    examples: int = 2  # pairs whose drags are saved (PNG + GIF) and logged
    out_dir: str | None = None  # None = Hydra's run folder
    progress: bool = True
    explain: bool = False  # print every drag setting the benchmark would run with, and where it came from; then stop


@dataclass
class GatesConfig:
    """`scripts/model_gates.py` (`eval.gates.run_gates`)."""

    generator: str = DEFAULT_MODEL  # registered name, path or URL of a checkpoint
    drag: DragSettings = field(default_factory=DragSettings)
    detector: str | None = None  # detector weights, None = the shipped ones
    num_samples: int = 256  # generated faces for the detection rate
    num_pairs: int = 30  # pairs of the landmark manipulation
    num_renders: int = 256  # held-out renders for the detector's error
    truncation_psi: float = 0.7
    seed: int = 0
    device: str = "cpu"  # where G, the detector and the drags run: cpu, auto, cuda, cuda:N, mps
    threads: int | str | None = "auto"  # torch CPU threads: auto (draggan/threads.py), a number, or null (torch's)
    progress: bool = True
    explain: bool = False  # print every drag setting the gates' drags would run with, and their sources; then stop


@dataclass
class GpuCheckConfig:
    """`scripts/gpu_check.py` (conf/gpu_check.yaml)."""

    device: str = "cuda"  # the device every check runs on (cuda, cuda:N, mps; cpu for a dry run)
    quick: bool = False  # small sizes (the test suite's dry run on the CPU)
    resolutions: list[int] = field(default_factory=lambda: [256, 512, 1024])  # of the drag benchmark
    official_repo: str | None = None  # a checkout of github.com/XingangPan/DragGAN: time its step too
    only: list[str] | None = None  # run only these checks (see CHECKS)
    out_dir: str | None = None  # None = Hydra's run folder
    progress: bool = True  # say on stderr which check runs, every few seconds while it lasts


@dataclass
class DragChecksConfig:
    check: str = "mask"  # mask or mouth
    generator: str = DEFAULT_MODEL  # registered name, path or URL of a checkpoint
    drag: DragSettings = field(default_factory=DragSettings)
    num_faces: int = 10  # faces (seeds seed, seed+1, ...; the mouth check skips faces without a visible mouth)
    seed: int = 0
    steps: int | None = None  # step limit of each drag (None: mask = drag.max_steps, mouth = 200, the issue's)
    landmark: str = "left_eye_center"  # mask: the dragged landmark
    offset: tuple[float, float] | None = None  # (dx, dy) of the drag (None: mask (0, -3), mouth (0, 6))
    mask_radius: float = 6.0  # mask: the movable disc around the handle and its target, pixels
    also: list[str] = field(default_factory=list)  # mask: landmarks moving with the dragged one (their discs are movable)
    truncation_psi: float = 0.7
    explain: bool = False  # print every drag setting the check would run with, and where it came from; then stop
    threads: int | str | None = "auto"  # torch CPU threads: auto (draggan/threads.py), a number, or null (torch's)


def schemas() -> list[tuple[str | None, str, type]]:
    """(group, name, schema) of the evaluation's configs; conf/*.yaml and conf/<group>/*.yaml extend them."""
    return [(None, "evaluate_schema", EvaluateConfig), (None, "gates_schema", GatesConfig),
            (None, "gpu_check_schema", GpuCheckConfig), (None, "drag_checks_schema", DragChecksConfig),
            (None, "benchmark_schema", BenchmarkConfig), (None, "tracker_schema", TrackerConfig)]


def all_schemas() -> list[tuple[str | None, str, type]]:
    """(group, name, schema) of every config of the project, layer by layer (the method registry's `drag_method`
    entries aside)."""
    from draggan import configs as library
    from draggan.apps import configs as applications
    from inversion import configs as inversion

    return library.schemas() + applications.schemas() + inversion.schemas() + schemas()


def register_configs() -> None:
    """Register every schema of the project in Hydra's ConfigStore: the evaluation's (`schemas()`) on top of the
    inversion's, the applications' and the library's (`inversion.configs.register_configs`)."""
    from inversion.configs import register_configs as register_below

    register_below()
    cs = ConfigStore.instance()
    for group, name, node in schemas():
        cs.store(group=group, name=name, node=node)
