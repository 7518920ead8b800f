"""Configs of eval/ (and the scripts that log), registered in Hydra's ConfigStore."""

from __future__ import annotations

from hydra.core.config_store import ConfigStore

from draggan.configs import register_configs as register_draggan_configs
from eval.logging import LoggerConfig


def register_configs() -> None:
    """Everything the scripts compose: the library's schemas, the inversion's, and the logger group."""
    from inversion.configs import register_configs as register_inversion_configs

    register_draggan_configs()
    register_inversion_configs()
    from eval.drag_checks import DragChecksConfig
    from eval.gpu_check import GpuCheckConfig
    from eval.run import BenchmarkConfig, EvaluateConfig, TrackerConfig

    cs = ConfigStore.instance()
    cs.store(group="logger", name="logger_schema", node=LoggerConfig)
    cs.store(name="evaluate_schema", node=EvaluateConfig)
    cs.store(name="gpu_check_schema", node=GpuCheckConfig)
    cs.store(name="drag_checks_schema", node=DragChecksConfig)
    cs.store(group="benchmark", name="benchmark_schema", node=BenchmarkConfig)
    cs.store(group="tracker", name="tracker_schema", node=TrackerConfig)
