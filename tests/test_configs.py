"""Every Hydra config composes against its schema, every group option too, and typos fail."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException

from eval.configs import register_configs

CONF = Path(__file__).resolve().parents[1] / "conf"
TOP = sorted(p.stem for p in CONF.glob("*.yaml"))
REQUIRED = {"download": [], "export": ["source=a.pkl", "output=b.safetensors"],
            "make_toyfaces": ["out=x"], "invert": ["image=x.png"], "edit_real": ["points=[[1,2,3,4]]"]}


@pytest.fixture(autouse=True, scope="module")
def hydra_dir():
    register_configs()
    with initialize_config_dir(config_dir=str(CONF), version_base=None):
        yield


@pytest.mark.parametrize("name", TOP)
def test_top_level_configs_compose(name):
    cfg = compose(config_name=name, overrides=REQUIRED.get(name, []))
    assert cfg is not None
    with pytest.raises(ConfigCompositionException):
        compose(config_name=name, overrides=REQUIRED.get(name, []) + ["no_such_key=1"])


@pytest.mark.parametrize("group,config", [("drag", "edit"), ("logger", "train"), ("inversion", "invert")])
def test_every_group_option_composes(group, config):
    for option in sorted(p.stem for p in (CONF / group).glob("*.yaml")):
        cfg = compose(config_name=config, overrides=REQUIRED.get(config, []) + [f"{group}={option}"])
        assert cfg[group] is not None, option


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
    import dataclasses

    from draggan.drag import DragConfig
    from draggan.edit import drag_config_from

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
