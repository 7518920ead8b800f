"""The download and export scripts, run as a user runs them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException

from draggan.checkpoint import load_generator_file
from eval.configs import register_configs
from tests.conftest import tiny_generator
from tests.helpers.official_layout import write_official_pickle

ROOT = Path(__file__).resolve().parents[2]


def test_export_script_converts_an_official_pickle(tmp_path):
    G = tiny_generator(16)
    write_official_pickle(G, tmp_path / "snap.pkl")
    out = tmp_path / "g.safetensors"
    proc = subprocess.run([sys.executable, str(ROOT / "scripts/export.py"), f"source={tmp_path / 'snap.pkl'}",
                           f"output={out}"], check=True, cwd=tmp_path, capture_output=True, text=True)
    assert proc.stdout == f"wrote {out}\n"  # and on stderr what it converts (an official 1024-px pickle: seconds)
    assert proc.stderr.splitlines()[0] == f"export: converting {tmp_path / 'snap.pkl'} ..."
    H = load_generator_file(out)
    ws = G.mapping(torch.randn(1, 16), None)
    assert (G.synthesis(ws) - H.synthesis(ws)).abs().max() == 0


def test_configs_reject_typos():
    register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base=None):
        cfg = compose(config_name="download", overrides=["models=[stylegan2-ffhq-512]"])
        assert list(cfg.models) == ["stylegan2-ffhq-512"]
        with pytest.raises(ConfigCompositionException):
            compose(config_name="download", overrides=["modles=[x]"])
