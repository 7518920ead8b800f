"""The generator equals the official one: every fixture array, other architectures, the feature API."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from draggan.networks import Generator
from tests.conftest import OFFICIAL_EXTRA, load_fixture_generator, tiny_generator

TOL = 1e-4


@pytest.mark.parametrize("name", ["tiny64", "v128"])
def test_every_fixture_array(name):
    G, meta, ref = load_fixture_generator(name)
    assert G.num_ws == meta["num_ws"]
    assert G.synthesis.block_resolutions == meta["block_resolutions"]
    z, c = torch.from_numpy(ref["z"]), torch.from_numpy(ref["c"])
    with torch.no_grad():
        np.testing.assert_allclose(G.mapping(z, c).numpy(), ref["ws_psi1"], atol=TOL, rtol=0)
        np.testing.assert_allclose(G.mapping(z, c, truncation_psi=0.7).numpy(), ref["ws_psi07"], atol=TOL, rtol=0)
        np.testing.assert_allclose(G.mapping(z, c, truncation_psi=0.7, truncation_cutoff=4).numpy(),
                                   ref["ws_psi07_cut4"], atol=TOL, rtol=0)
        img, feats = G.synthesis(torch.from_numpy(ref["ws_psi07"]), noise_mode="const", return_features=True)
        np.testing.assert_allclose(img.numpy(), ref["img_psi07_const"], atol=TOL, rtol=0)
        img = G.synthesis(torch.from_numpy(ref["ws_psi1"]), noise_mode="none")
        np.testing.assert_allclose(img.numpy(), ref["img_psi1_nonoise"], atol=TOL, rtol=0)
    feat_keys = sorted(k for k in ref if k.startswith("feat"))
    assert len(feat_keys) == len(meta["block_resolutions"])
    for key in feat_keys:
        k = int(key[4:].split("_")[0])
        np.testing.assert_allclose(feats[k][:1].numpy(), ref[key], atol=TOL, rtol=0, err_msg=key)


@pytest.mark.parametrize("name", ["cond256", "resnet512", "big1024", "human", "sg3flat"])
def test_other_official_architectures(name):
    G, meta, ref = load_fixture_generator(name, OFFICIAL_EXTRA)
    s = meta["img_stride"]
    with torch.no_grad():
        ws = G.mapping(torch.from_numpy(ref["z"]), torch.from_numpy(ref["c"]), truncation_psi=0.7, truncation_cutoff=4)
        np.testing.assert_allclose(ws.numpy(), ref["ws_psi07_cut4"], atol=TOL, rtol=0)
        ws = torch.from_numpy(ref["ws_psi07_cut4"])
        img = G.synthesis(ws, noise_mode="const")
        np.testing.assert_allclose(img[:, :, ::s, ::s].numpy(), ref["img_const"], atol=TOL, rtol=0)
        img_none = G.synthesis(ws, noise_mode="none")
        np.testing.assert_allclose(img_none[:, :, ::4, ::4].numpy(), ref["img_none"], atol=TOL, rtol=0)
    if name == "human":
        assert img.shape[-2:] == (512, 256) and (G.img_height, G.img_width) == (512, 256)


def test_official_parameter_names_load_strictly():
    G, _, _ = load_fixture_generator("v128")
    names = set(np.load("tests/fixtures/stylegan2/v128_weights.npz").files)
    assert set(G.state_dict()) == names


def test_features_stop_at_the_requested_block():
    G = tiny_generator(64)
    ws = G.mapping(torch.randn(2, 16), None)
    called = []
    hooks = [b.register_forward_hook(lambda m, i, o, r=b.resolution: called.append(r)) for b in G.synthesis.blocks]
    hooks += [b.conv1.register_forward_hook(lambda m, i, o, r=b.resolution: called.append(("conv1", r)))
              for b in G.synthesis.blocks]
    torgb_calls = []
    hooks += [b.torgb.register_forward_hook(lambda *a: torgb_calls.append(1)) for b in G.synthesis.blocks]
    feats = G.synthesis.features(ws, up_to=2)
    for h in hooks:
        h.remove()
    assert [r for r in called if isinstance(r, tuple)] == [("conv1", 4), ("conv1", 8), ("conv1", 16)]
    assert torgb_calls == []
    _, full = G.synthesis(ws, return_features=True)
    assert len(feats) == 3
    for a, b in zip(feats, full):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert G.synthesis.feature_shape(2) == tuple(full[2].shape[1:])


def test_noise_modes():
    G = tiny_generator(16)
    ws = G.mapping(torch.randn(1, 16), None)
    const1, const2 = G.synthesis(ws, noise_mode="const"), G.synthesis(ws, noise_mode="const")
    torch.testing.assert_close(const1, const2, rtol=0, atol=0)
    r1, r2 = G.synthesis(ws, noise_mode="random"), G.synthesis(ws, noise_mode="random")
    assert (r1 - r2).abs().max() > 1e-4
    assert (G.synthesis(ws, noise_mode="none") - const1).abs().max() > 1e-4


def test_conditional_generator_needs_a_label():
    G = tiny_generator(16, c_dim=3)
    with pytest.raises(ValueError, match="conditional"):
        G.mapping(torch.randn(1, 16), None)
    ws = G.mapping(torch.randn(2, 16), torch.eye(3)[:2])
    assert ws.shape == (2, G.num_ws, 16)


def test_bad_inputs_are_clear_errors():
    G = tiny_generator(16)
    with pytest.raises(ValueError, match="ws has shape"):
        G.synthesis(torch.zeros(1, G.num_ws - 1, 16))
    with pytest.raises(ValueError, match="noise_mode"):
        G.synthesis(torch.zeros(1, G.num_ws, 16), noise_mode="bogus")
    with pytest.raises(ValueError, match="z has shape"):
        G.mapping(torch.zeros(1, 15), None)
    with pytest.raises(ValueError, match="power of two"):
        Generator(z_dim=4, c_dim=0, w_dim=4, img_resolution=48, img_channels=3)
    with pytest.raises(TypeError):
        Generator(z_dim=4, c_dim=0, w_dim=4, img_resolution=16, img_channels=3, not_a_setting=1)


def test_training_only_settings_change_nothing_in_float32():
    a = tiny_generator(32, seed=3)
    b = Generator(**{**a.init_kwargs, "synthesis_kwargs": {**a.init_kwargs["synthesis_kwargs"], "num_fp16_res": 4,
                                                          "fp16_channels_last": True,
                                                          "fused_modconv_default": "inference_only"}})
    b.load_state_dict(a.state_dict())
    ws = a.mapping(torch.randn(1, 16), None)
    torch.testing.assert_close(a.synthesis(ws), b.eval().synthesis(ws), rtol=0, atol=0)


def test_bfloat16_synthesis_is_close_to_float32():
    G = tiny_generator(32)
    ws = G.mapping(torch.randn(1, 16), None)
    ref = G.synthesis(ws)
    low = G.synthesis(ws, dtype=torch.bfloat16)
    assert low.dtype == torch.float32
    assert (low - ref).abs().mean() < 0.05 * ref.abs().mean()
