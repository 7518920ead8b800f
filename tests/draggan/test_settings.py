"""One resolver makes a run's drag settings and remembers where each value came from (`draggan.settings`):
defaults, the method's options, the preset, the model registry, overrides and the adaptation to the generator;
every run folder keeps the record (`drag_config.yaml`), a saved session keeps it, an upload cannot name code or
files of the server."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
import yaml

from draggan.latents import initial_latent
from draggan.loading import load_generator
from draggan.presets import DEFAULT_METHOD, RECOMMENDED
from draggan.session import DragSession
from draggan.session_io import SESSION_FILE, SessionFileError, load_session, save_session
from draggan.settings import SETTINGS_FILE, DragConfig, resolve_drag, settings_record, with_sources
from tests.conftest import tiny_generator


@pytest.fixture(scope="module")
def toy():
    return load_generator("toy-faces-64", device="cpu")


def sources(record: dict) -> dict[str, str]:
    flat = {k: v["source"] for k, v in record.items() if k != "method_options"}
    flat.update({f"method_options.{k}": v["source"] for k, v in record["method_options"].items()})
    return flat


def test_each_layer_is_recorded_as_the_source_of_the_values_it_set(toy):
    config = resolve_drag(toy, overrides={"lr": 0.003, "method_options": {"l_expected": 0.2}})
    assert config.method == DEFAULT_METHOD and config.lr == 0.003 and config.feature_block == 3
    src = sources(settings_record(config, toy))
    assert src["method"] == "preset:recommended"  # the preset chose the method
    assert src["lr"] == "override" and src["feature_block"] == "model:toy-faces-64"
    assert src["stop_distance"] == "model:toy-faces-64" and src["r1"] == "preset:recommended"
    assert src["noise_mode"] == "default" and src["method_options.d_max"] == "method:freedrag"
    assert src["method_options.l_expected"] == "override"
    assert {k for k in RECOMMENDED if src[k] == "preset:recommended"} == set(RECOMMENDED)
    # the paper's preset on a 64-px generator: the block is adapted, and says why
    paper = settings_record(DragConfig.preset("paper", generator=toy), toy)
    assert paper["feature_block"] == {"value": 3, "source": "adapted:no block 5 below 128 px"}
    assert paper["method"] == {"value": "draggan", "source": "preset:paper"}
    official = settings_record(DragConfig.preset("official", method="stabledrag"), tiny_generator(64))
    assert official["min_radius"]["source"] == "adapted:0-px radius" and official["lr"]["source"] == "preset:official"
    assert official["method"]["source"] == "override" and official["method_options"]["tau"]["value"] == 0.8


def test_a_changed_value_is_an_override_and_a_plain_config_is_read_against_the_defaults(toy):
    config = DragConfig.for_generator(toy).replace(lr=0.05, method="draggan")
    src = sources(settings_record(config, toy))
    assert src["lr"] == "override" and src["method"] == "override" and src["r1"] == "preset:recommended"
    plain = sources(settings_record(DragConfig(feature_block=3, r1=2.0), toy))
    assert plain["feature_block"] == plain["r1"] == "override" and plain["lr"] == "default"
    copied = sources(settings_record(dataclasses.replace(DragConfig.for_generator(toy), lr=0.05), toy))
    assert copied["r1"] == "override"  # dataclasses.replace keeps values only (documented: use .replace)


def test_bad_names_are_one_line_errors():
    with pytest.raises(ValueError, match="no drag setting lrr"):
        resolve_drag(None, overrides={"lrr": 1})
    with pytest.raises(ValueError, match="unknown drag preset 'fast' for method 'draggan'"):
        DragConfig.preset("fast")
    with pytest.raises(ValueError, match="unknown drag method 'nope'"):
        resolve_drag(None, method="nope")


def test_a_session_without_a_config_runs_the_library_default(toy):
    ws = initial_latent(toy, 0, 0.7)
    bare = DragSession(toy, ws, [(32, 40)], [(32, 44)])
    default = DragSession(toy, ws, [(32, 40)], [(32, 44)], config=DragConfig.for_generator(toy))
    assert bare.config == default.config and bare.settings == default.settings
    assert [bare.step().handles for _ in range(3)] == [default.step().handles for _ in range(3)]


def test_a_saved_session_keeps_its_record_and_writes_drag_config_yaml(toy, tmp_path):
    config = DragConfig.for_generator(toy).replace(lr=0.004)
    s = DragSession(toy, initial_latent(toy, 0, 0.7), [(32, 40)], [(32, 44)], config=config)
    s.step()
    save_session(s, tmp_path, generator="toy-faces-64")
    on_disk = yaml.safe_load((tmp_path / SETTINGS_FILE).read_text())
    assert on_disk["lr"] == {"value": 0.004, "source": "override"} and on_disk == s.settings
    assert load_session(tmp_path, toy).settings == s.settings
    # a record from a file is data: sources that are not of the allowed forms are read as overrides
    meta = json.loads((tmp_path / SESSION_FILE).read_text())
    meta["settings"]["r1"]["source"] = "preset:x\nrm -rf /"
    meta["settings"]["lr"] = "junk"
    (tmp_path / SESSION_FILE).write_text(json.dumps(meta))
    loaded = load_session(tmp_path, toy).settings
    assert loaded["r1"]["source"] == "override" and loaded["lr"]["source"] == "override"
    assert loaded["r2"]["source"] == "preset:recommended"
    assert with_sources(DragConfig(), "not a record") == DragConfig()


def test_an_uploaded_session_names_no_code_and_no_file_of_the_server(toy, tmp_path):
    """Issue 26, row 10: an upload whose latent transformer's weights name a server path is refused when it is
    loaded, before any file is opened; so is one whose method is code to import."""
    s = DragSession(toy, initial_latent(toy, 0, 0.7), [(32, 40)], [(32, 44)], config=DragConfig.for_generator(toy))
    s.step()
    save_session(s, tmp_path, generator="toy-faces-64")
    meta = json.loads((tmp_path / SESSION_FILE).read_text())
    for config, match in (({"method": "uclt", "method_options": {"weights": "/etc/passwd"}}, "method_options.weights"),
                          ({"method": "os:system"}, "names code to import"),
                          ({"method": ["draggan"]}, "not a name")):
        (tmp_path / SESSION_FILE).write_text(json.dumps({**meta, "config": {**meta["config"], **config}}))
        with pytest.raises(SessionFileError, match=match):
            load_session(tmp_path, toy, trusted=False)
    (tmp_path / SESSION_FILE).write_text(json.dumps(meta))
    assert torch.equal(load_session(tmp_path, toy, trusted=False).ws, s.ws)  # a registered method is fine
    import sys

    sys.modules.pop("this", None)
    with pytest.raises(ValueError, match="names code to import"):  # refused before anything is imported
        DragSession(toy, s.ws0, [(32, 40)], [(32, 44)], config=DragConfig(method="this:s"), allow_import=False)
    assert "this" not in sys.modules


def test_explain_prints_every_setting_with_its_source():
    from hydra import compose, initialize_config_dir

    from draggan.configs import explain_drag, register_configs
    from tests.test_configs import CONF

    register_configs()
    with initialize_config_dir(config_dir=str(CONF), version_base=None):
        text = explain_drag(compose("edit", overrides=["drag=official", "drag.max_steps=7"]))
    lines = text.splitlines()
    assert lines[0] == "drag settings for toy-faces-64:"
    assert any(line.split() == ["max_steps", "7", "override"] for line in lines)
    assert any(line.split() == ["min_radius", "1.0", "adapted:0-px", "radius"] for line in lines)
    assert len(lines) == 1 + len(dataclasses.fields(DragConfig)) - 1  # one line a setting (DragGAN has no options)
