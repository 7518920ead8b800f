"""Every Hydra config composes against its schema with every option of each of its groups, and becomes the library
objects it configures (`draggan.configs.from_config`, `drag_config_from`); typos fail; the run folder is defined once."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from draggan.apps.configs import BenchDragConfig, DownloadConfig, ExportConfig
from draggan.apps.editor.configs import AppConfig
from draggan.apps.toyfaces.configs import MakeToyFacesConfig, TrainDetectorConfig
from draggan.apps.training.configs import TrainConfig, TrainScriptConfig
from draggan.configs import DragSettings, EditConfig, drag_config_from, from_config
from draggan.methods.configs import UCLTTrainConfig
from draggan.registry import DEFAULT_MODEL
from draggan.settings import DragConfig
from eval.configs import (
    BenchmarkConfig,
    DragChecksConfig,
    EvaluateConfig,
    GatesConfig,
    GpuCheckConfig,
    TrackerConfig,
    all_schemas,
    register_configs,
)
from draggan.loggers import LoggerConfig
from inversion.configs import (
    EditRealConfig,
    InversionSettings,
    InvertConfig,
    PTISettings,
)

CONF = Path(__file__).resolve().parents[1] / "conf"
TOP = sorted(p.stem for p in CONF.glob("*.yaml"))
REQUIRED = {"download": [], "export": ["source=a.pkl", "output=b.safetensors"],
            "make_toyfaces": ["out=x"], "invert": ["image=x.png"], "edit_real": ["points=[[1,2,3,4]]"]}
SCHEMA_OF = {"app": AppConfig, "bench_drag": BenchDragConfig, "download": DownloadConfig, "edit": EditConfig,
             "edit_real": EditRealConfig, "evaluate": EvaluateConfig, "export": ExportConfig, "gates": GatesConfig,
             "gpu_check": GpuCheckConfig, "invert": InvertConfig, "make_toyfaces": MakeToyFacesConfig,
             "train": TrainScriptConfig, "train_detector": TrainDetectorConfig, "train_uclt": UCLTTrainConfig,
             "drag_checks": DragChecksConfig}
GROUP_SCHEMA = {"drag": DragSettings, "inversion": InversionSettings, "logger": LoggerConfig,
                "benchmark": BenchmarkConfig, "tracker": TrackerConfig}


@pytest.fixture(autouse=True, scope="module")
def hydra_dir():
    register_configs()
    with initialize_config_dir(config_dir=str(CONF), version_base=None, job_name="drag"):
        yield


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def option_values(group: str, option: str) -> dict:
    """What the YAML file of a group option sets (its own keys, not its schema's defaults)."""
    data = yaml.safe_load((CONF / group / f"{option}.yaml").read_text()) or {}
    return {k: v for k, v in data.items() if k != "defaults"}


def assert_holds(actual: dict, expected: dict, where: str = "") -> None:
    """Every key of `expected` (nested) has its value in `actual`."""
    for key, value in expected.items():
        if isinstance(value, dict):
            assert_holds(actual[key], value, f"{where}{key}.")
        else:
            assert actual[key] == value, f"{where}{key}: {actual[key]!r} != {value!r}"


def build(name: str, cfg) -> dict[str, object]:
    """The library objects that the script of config `name` makes of it, by the project's one conversion."""
    built: dict[str, object] = {}
    if "drag" in cfg:  # (the drag group leaves the preset's settings `???` until drag_config_from resolves them)
        built["drag"] = drag_config_from(cfg, cfg.generator or DEFAULT_MODEL)
    else:
        built["schema"] = from_config(SCHEMA_OF[name], cfg)
    if "inversion" in cfg:
        built["inversion"] = from_config(InversionSettings, cfg.inversion)
    if "logger" in cfg:
        built["logger"] = from_config(LoggerConfig, cfg.logger)
    if "benchmark" in cfg:
        built["benchmark"] = from_config(BenchmarkConfig, cfg.benchmark)
    if "tracker" in cfg:
        from eval.trackers import Tracker, make_tracker

        built["tracker"] = make_tracker(cfg.tracker.name, drag_config=built["drag"])
        assert isinstance(built["tracker"], Tracker)
    if name == "train":
        built["train"] = from_config(TrainConfig, cfg.train)
    return built


def overrides_of(name: str) -> dict[str, object]:
    return {k: yaml.safe_load(v) for k, v in (o.split("=", 1) for o in REQUIRED.get(name, []))}


@pytest.mark.parametrize("name", TOP)
def test_every_top_level_config_composes_and_builds(name):
    assert set(SCHEMA_OF) == set(TOP), "a top-level config without its schema in this test"
    cfg = compose(config_name=name, overrides=REQUIRED.get(name, []))
    assert OmegaConf.get_type(cfg) is SCHEMA_OF[name]
    built = build(name, cfg)
    if "schema" in built:  # the schema's defaults with what the command line gave and what the groups built
        groups = {k: built[k] for k in ("inversion", "logger", "benchmark", "train") if k in built}
        if "tracker" in cfg:
            groups["tracker"] = from_config(TrackerConfig, cfg.tracker)
        assert built["schema"] == SCHEMA_OF[name](**overrides_of(name), **groups)
    else:
        assert isinstance(built["drag"], DragConfig)
        for key, value in overrides_of(name).items():
            assert OmegaConf.to_container(cfg)[key] == value
    if name == "train":
        assert built["train"] == TrainConfig(betas=[0.0, 0.99])  # conf/train.yaml keeps the trainer's defaults
    with pytest.raises(ConfigCompositionException):
        compose(config_name=name, overrides=REQUIRED.get(name, []) + ["no_such_key=1"])


def all_group_cases() -> list[tuple[str, str, str]]:
    """(top-level config, group, option) for every group each top-level config chooses from (read from its
    defaults list in the YAML, so that a new group or option is covered without editing this test)."""
    cases = []
    for name in TOP:
        defaults = yaml.safe_load((CONF / f"{name}.yaml").read_text())["defaults"]
        groups = [next(iter(d)) for d in defaults if isinstance(d, dict) and next(iter(d)) in GROUP_SCHEMA]
        cases += [(name, group, option) for group in groups for option in options(group)]
    return cases


@pytest.mark.parametrize("name,group,option", all_group_cases())
def test_every_group_option_composes_and_builds(name, group, option):
    cfg = compose(config_name=name, overrides=REQUIRED.get(name, []) + [f"{group}={option}"])
    assert OmegaConf.get_type(cfg[group]) is GROUP_SCHEMA[group]  # the option extends its group's schema
    assert_holds(OmegaConf.to_container(cfg[group]), option_values(group, option))  # and what it sets arrives
    built = build(name, cfg)
    if group == "drag":
        expected = DragConfig.preset(option, generator=cfg.generator or DEFAULT_MODEL)
        if not OmegaConf.is_missing(cfg.drag, "method"):  # a drag_method chosen by the config's defaults (evaluate)
            expected = dataclasses.replace(expected, method=cfg.drag.method,
                                           method_options=OmegaConf.to_container(cfg.drag.method_options))
        assert built["drag"] == expected
    elif group == "inversion":
        assert isinstance(built["inversion"], InversionSettings) and isinstance(built["inversion"].pti, PTISettings)
        assert built["inversion"].loss == option_values(group, option).get("loss", InversionSettings.loss)
    elif group == "logger":
        assert built["logger"].kind == option
    elif group == "benchmark":
        assert built["benchmark"].name == option
    elif group == "tracker":
        assert built["tracker"].name == option
    with pytest.raises(ConfigCompositionException):  # a misspelt key inside the group fails too
        compose(config_name=name, overrides=REQUIRED.get(name, []) + [f"{group}={option}", f"{group}.no_such_key=1"])


@pytest.mark.parametrize("name", ["edit", "evaluate"])
def test_every_drag_method_option_composes_into_the_drag_settings(name):
    """The `drag_method` group, made from the method registry (no YAML copy of a method's defaults), sets
    `drag.method` on top of any preset: the result is that preset of that method, exactly."""
    from draggan.methods import available

    shipped = [m for m in available() if ":" not in m and not m.endswith("-test")]
    assert {"draggan", "freedrag", "stabledrag", "uclt"} <= set(shipped)
    for option in shipped:
        for preset in options("drag"):
            cfg = compose(config_name=name, overrides=[f"drag_method={option}", f"drag={preset}"])
            built = drag_config_from(cfg, DEFAULT_MODEL)
            assert built == DragConfig.preset(preset, generator=DEFAULT_MODEL, method=option), (option, preset)


@pytest.mark.parametrize("name", ["edit", "drag_checks", "app", "edit_real", "evaluate"])
def test_without_drag_method_a_command_runs_its_presets_method(name):
    """The editing commands and the checks run the preset's method (recommended: FreeDrag, the library's default;
    paper and official: DragGAN), the evaluation included (its paper's tables pin DragGAN in conf/experiment/)."""
    for preset, method in (("recommended", "freedrag"), ("paper", "draggan"), ("official", "draggan")):
        cfg = compose(config_name=name, overrides=REQUIRED.get(name, []) + [f"drag={preset}"])
        assert drag_config_from(cfg, DEFAULT_MODEL).method == method, (name, preset)
    for experiment in ("table1", "table2", "tracking") if name == "evaluate" else ():
        cfg = compose(config_name=name, overrides=[f"+experiment={experiment}"])
        assert drag_config_from(cfg, DEFAULT_MODEL).method == "draggan", experiment


def test_every_config_and_group_has_a_registered_schema():
    """Each top-level YAML extends its schema, and each group option extends the group's schema, which is a root
    config (`/drag_schema@_here_`), not an option of the group: `drag=drag_schema` is no choice (issue 27)."""
    from hydra.core.config_store import ConfigStore

    registered = {(group, name): node for group, name, node in all_schemas()}
    repo = ConfigStore.instance().repo
    for name in TOP:
        first = yaml.safe_load((CONF / f"{name}.yaml").read_text())["defaults"][0]
        assert registered[(None, first)] is SCHEMA_OF[name], name
        assert OmegaConf.get_type(repo[f"{first}.yaml"].node) is SCHEMA_OF[name], name
    for group, schema in GROUP_SCHEMA.items():
        assert registered[(None, f"{group}_schema")] is schema
        assert OmegaConf.get_type(repo[f"{group}_schema.yaml"].node) is schema
        assert f"{group}_schema.yaml" not in repo.get(group, {})
        for option in options(group):
            assert yaml.safe_load((CONF / group / f"{option}.yaml").read_text())["defaults"] == \
                [f"/{group}_schema@_here_"], (group, option)


def test_the_run_folder_is_defined_once():
    """conf/hydra/default.yaml names every script's run folder after the script; no top-level YAML repeats it
    (evaluate.yaml adds a level per benchmark, download and export write where they are asked)."""
    for name in TOP:
        text = (CONF / f"{name}.yaml").read_text()
        defaults = yaml.safe_load(text)["defaults"]
        assert ({"hydra": "here"} if name in ("download", "export") else {"hydra": "default"}) in defaults, name
        assert ("dir:" in text) == (name == "evaluate"), name
    hydra = compose(config_name="edit", return_hydra_config=True).hydra
    assert hydra.run.dir.startswith("outputs/drag/") and hydra.sweep.dir.startswith("multirun/drag/")
    hydra = compose(config_name="evaluate", overrides=["benchmark=paired"], return_hydra_config=True).hydra
    assert hydra.run.dir.startswith("outputs/drag/paired/")  # the job is called drag in this test
    hydra = compose(config_name="download", return_hydra_config=True).hydra
    assert hydra.run.dir == "." and hydra.output_subdir is None


def test_the_tracker_list_is_one_list():
    """conf/tracker/ holds one option per tracker of eval.trackers.TRACKERS; the tracking benchmark and Table 1
    take every one of them from there."""
    from eval.trackers import TRACKERS

    assert set(options("tracker")) == set(TRACKERS)
    assert from_config(BenchmarkConfig, compose(config_name="evaluate", overrides=["benchmark=tracking"]).benchmark
                       ).trackers is None  # None = every tracker (eval.run)
    table1 = yaml.safe_load((CONF / "experiment" / "table1.yaml").read_text())
    assert table1["hydra"]["sweeper"]["params"]["tracker"] == "glob(*,exclude=tracker_schema)"


def test_default_generator_is_the_embedded_model():
    for name in ("gates", "invert", "edit_real", "evaluate", "app"):
        assert compose(config_name=name, overrides=REQUIRED.get(name, [])).generator == "toy-faces-64"
    # the drag command's default is resolved by run_drag: toy-faces-64, or with resume= the session's generator
    assert compose(config_name="edit").generator is None


@pytest.mark.parametrize("source", ["/path/to/net.pkl", "https://example.org/models/net.pkl", "stylegan2-ffhq-512",
                                    "random:64:1", "nets/my model.safetensors"])
def test_generator_is_whatever_the_user_types(source):
    """A registered name, a path or a URL, written as `generator=...` (it was a config group: paths failed)."""
    for name in ("edit", "invert", "evaluate", "app", "gates"):
        assert compose(config_name=name, overrides=REQUIRED.get(name, []) + [f"generator={source}"]).generator == source


def test_drag_presets_and_settings_on_top():
    """`drag=` names a preset that the generator's own settings never override; drag.<setting> goes on top."""

    def drag(*overrides):
        return drag_config_from(compose(config_name="edit", overrides=list(overrides)), "toy-faces-64")

    assert drag() == DragConfig.for_generator("toy-faces-64")  # the default: recommended
    assert drag("drag=official") == DragConfig.preset("official")  # lr 1e-3, not toy-faces-64's 1e-2
    assert drag("drag=paper") == DragConfig()
    assert drag("drag.lr=0.02") == dataclasses.replace(DragConfig.for_generator("toy-faces-64"), lr=0.02)
    assert drag("drag=official", "drag.min_radius=1", "drag.r1=2").min_radius == 1.0
    assert drag("drag=official", "drag.min_radius=1", "drag.r1=2").lr == 1e-3
    with pytest.raises(ConfigCompositionException):
        drag("drag.lrr=0.01")  # a misspelt setting fails when composed
    with pytest.raises(ConfigCompositionException):
        drag("drag.lr=fast")


def test_from_config_checks_what_it_converts():
    """The one conversion refuses what Hydra would refuse: an unknown key, a value of the wrong type."""
    assert from_config(InversionSettings, {"loss": "mse", "pti": {"num_steps": 3}}).pti.num_steps == 3
    with pytest.raises(Exception, match="no_such"):
        from_config(InversionSettings, {"no_such": 1})
    with pytest.raises(Exception, match="num_steps"):
        from_config(InversionSettings, {"num_steps": "x"})
