"""Every Hydra config composes against its schema, every group option too, and typos fail."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException

from eval.configs import register_configs

CONF = Path(__file__).resolve().parents[1] / "conf"
TOP = sorted(p.stem for p in CONF.glob("*.yaml"))
REQUIRED = {"download": [], "export": ["source=a.pkl", "output=b.safetensors"], "edit": ["points=[[1,2,3,4]]"],
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


@pytest.mark.parametrize("group,config", [("generator", "edit"), ("drag", "edit"), ("logger", "train"),
                                          ("inversion", "invert")])
def test_every_group_option_composes(group, config):
    for option in sorted(p.stem for p in (CONF / group).glob("*.yaml")):
        cfg = compose(config_name=config, overrides=REQUIRED.get(config, []) + [f"{group}={option}"])
        assert cfg[group] is not None, option


def test_default_generator_is_the_embedded_model():
    for name in ("edit", "gates", "invert", "edit_real"):
        assert compose(config_name=name, overrides=REQUIRED.get(name, [])).generator.source == "toy-faces-64"


def test_generator_drag_overrides_are_checked():
    from draggan.edit import drag_config_from

    cfg = compose(config_name="edit", overrides=["points=[[1,2,3,4]]", "+generator.drag_overrides.lrr=1"])
    with pytest.raises(ValueError, match="lrr"):
        drag_config_from(cfg)


def test_a_drag_setting_replaced_by_the_generator_config_is_said(caplog):
    from draggan.edit import drag_config_from

    cfg = compose(config_name="edit", overrides=["points=[[1,2,3,4]]", "drag.lr=0.01"])
    with caplog.at_level("WARNING"):
        drag = drag_config_from(cfg)
    assert drag.lr == 0.005  # toy-faces-64's own setting wins...
    assert "generator.drag_overrides.lr" in caplog.text  # ...and the user is told how to change it
    cfg = compose(config_name="edit", overrides=["points=[[1,2,3,4]]", "generator.drag_overrides.lr=0.01"])
    assert drag_config_from(cfg).lr == 0.01
