"""Safe checkpoint loading: official layouts, TF pickles, hostile and broken files, the safe format."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch

from draggan import CheckpointError, load_generator, save_generator
from draggan.checkpoint import generator_from_pickle, load_generator_file, read_safe_metadata
from tests.conftest import OFFICIAL_EXTRA, load_fixture_generator, tiny_generator
from tests.helpers.official_layout import write_official_pickle, write_tf_pickle


def _same_outputs(a, b, ws):
    with torch.no_grad():
        torch.testing.assert_close(a.synthesis(ws), b.synthesis(ws), rtol=0, atol=0)


@pytest.mark.parametrize("only_g_ema", [False, True])
def test_official_layout_pickle_loads_like_its_state_dict(tmp_path, only_g_ema):
    G, _, ref = load_fixture_generator("v128")
    path = tmp_path / "network-snapshot.pkl"
    write_official_pickle(G, path, only_g_ema=only_g_ema)
    H = load_generator(path, device="cpu")
    assert not H.training and not any(p.requires_grad for p in H.parameters())
    np.testing.assert_allclose(H.synthesis(torch.from_numpy(ref["ws_psi07"])).numpy(), ref["img_psi07_const"],
                               atol=1e-4, rtol=0)


def test_non_square_and_conditional_pickles_read_their_architecture_from_content(tmp_path):
    for name in ["human", "cond256", "sg3flat"]:
        G, meta, ref = load_fixture_generator(name, OFFICIAL_EXTRA)
        kwargs = dict(meta["init_kwargs"])
        kwargs.pop("square", None)
        path = tmp_path / "no-hint-in-this-name.pkl"
        write_official_pickle(G, path, init_kwargs=kwargs, only_g_ema=(name == "human"))
        H = load_generator(path, device="cpu")
        assert (H.img_height, H.img_width) == (G.img_height, G.img_width)
        _same_outputs(G, H, torch.from_numpy(ref["ws_psi07_cut4"]))


def test_tensorflow_pickle_converts(tmp_path):
    G, meta, ref = load_fixture_generator("tiny64")
    kw = meta["init_kwargs"]
    static = dict(latent_size=kw["z_dim"], label_size=0, dlatent_size=kw["w_dim"], resolution=kw["img_resolution"],
                  num_channels=3, fmap_base=kw["synthesis_kwargs"]["channel_base"] // 2,
                  fmap_max=kw["synthesis_kwargs"]["channel_max"], mapping_layers=kw["mapping_kwargs"]["num_layers"],
                  conv_clamp=256, truncation_psi=0.5)
    path = tmp_path / "tf.pkl"
    write_tf_pickle(G, path, static_kwargs=static)
    H = load_generator_file(path)
    z = torch.from_numpy(ref["z"])
    np.testing.assert_allclose(H.mapping(z, None, truncation_psi=0.7).numpy(), ref["ws_psi07"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(H.synthesis(torch.from_numpy(ref["ws_psi07"])).numpy(), ref["img_psi07_const"],
                               atol=1e-4, rtol=0)


def test_tensorflow_pickle_with_unknown_setting_is_refused(tmp_path):
    G = tiny_generator(16)
    path = tmp_path / "tf.pkl"
    write_tf_pickle(G, path, static_kwargs=dict(latent_size=16, dlatent_size=16, resolution=16, fmap_base=128,
                                                fmap_max=16, mapping_layers=2, some_new_knob=3))
    with pytest.raises(CheckpointError, match="some_new_knob"):
        load_generator_file(path)


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_malicious_pickle_payload_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    with open(path, "wb") as f:
        pickle.dump({"G_ema": _Payload(marker)}, f)
    with pytest.raises(CheckpointError, match="refusing to load 'posix.system'|refusing to load 'os.system'"):
        load_generator(path, device="cpu")
    assert not marker.exists()


def test_embedded_source_is_never_executed(tmp_path):
    marker = tmp_path / "source-ran"
    G = tiny_generator(16)
    path = tmp_path / "snapshot.pkl"
    write_official_pickle(G, path, module_src=f"import pathlib\npathlib.Path({str(marker)!r}).touch()\n")
    H = load_generator(path, device="cpu")
    assert not marker.exists()
    _same_outputs(G, H, G.mapping(torch.randn(1, 16), None))


@pytest.mark.parametrize("cut", [0.1, 0.5, 0.95])
def test_truncated_pickle_is_a_clear_error(tmp_path, cut):
    G = tiny_generator(16)
    path = tmp_path / "snapshot.pkl"
    write_official_pickle(G, path)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_generator_file(path)


def test_missing_empty_and_foreign_files(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_generator(tmp_path / "nope.pkl", device="cpu")
    (tmp_path / "empty.pkl").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        load_generator_file(tmp_path / "empty.pkl")
    (tmp_path / "text.pkl").write_text("hello world, not a pickle")
    with pytest.raises(CheckpointError, match="not a network pickle"):
        load_generator_file(tmp_path / "text.pkl")
    with open(tmp_path / "list.pkl", "wb") as f:
        pickle.dump([1, 2, 3], f)
    with pytest.raises(CheckpointError, match="holds a list"):
        load_generator_file(tmp_path / "list.pkl")
    with open(tmp_path / "dict.pkl", "wb") as f:
        pickle.dump({"weights": [1.0]}, f)
    with pytest.raises(CheckpointError, match="no 'G_ema'"):
        load_generator_file(tmp_path / "dict.pkl")


def test_safe_format_round_trip_and_corruption(tmp_path):
    G = tiny_generator(32, c_dim=2)
    path = save_generator(G, tmp_path / "g.safetensors")
    assert sorted(os.listdir(tmp_path)) == ["g.safetensors"]  # no temporary file left behind
    assert read_safe_metadata(path)["format"] == "draggan-generator"
    H = load_generator(path, device="cpu")
    assert H.c_dim == 2
    ws = G.mapping(torch.randn(1, 16), torch.eye(2)[:1])
    _same_outputs(G, H, ws)
    data = path.read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError):
        load_generator_file(tmp_path / "cut.safetensors")


def test_official_pickle_exports_to_safe_format(tmp_path):
    from draggan.apps.commands import export_checkpoint

    G = tiny_generator(32, seed=5)
    write_official_pickle(G, tmp_path / "in.pkl")
    out = export_checkpoint(tmp_path / "in.pkl", tmp_path / "out.safetensors")
    H = load_generator_file(out)
    _same_outputs(G, H, G.mapping(torch.randn(1, 16), None))


def test_device_that_is_not_there_is_an_error_not_a_fallback():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(RuntimeError, match="CUDA was asked for"):
        load_generator(tiny_generator(16), device="cuda")


def test_stylegan3_networks_are_refused_with_a_reason(tmp_path):
    G = tiny_generator(16)
    G.synthesis._modules = {"input": G.synthesis.b4}  # the shape of an alias-free synthesis network
    path = tmp_path / "sg3.pkl"
    write_official_pickle(G, path)
    with pytest.raises(CheckpointError, match="StyleGAN3"):
        generator_from_pickle(path)
