"""Inversion: image loading and bad input, LPIPS weight loading, projection and pivotal tuning."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from inversion import ImageLoadError, LPIPSWeightsError, apply_noise, load_image, load_lpips, pivotal_tune, project
from inversion.projector import parse_loss
from tests.conftest import tiny_generator


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = ((a.clamp(-1, 1) - b.clamp(-1, 1)) / 2).square().mean().item()
    return 10 * math.log10(1 / max(mse, 1e-12))


# ---------------------------------------------------------------- image loading

def test_load_image_modes_and_sizes(tmp_path):
    rgb = np.zeros((30, 60, 3), np.uint8)
    rgb[:, 20:40] = 255  # a white band in the middle of a wide image
    Image.fromarray(rgb).save(tmp_path / "wide.png")
    crop = load_image(tmp_path / "wide.png", 16)
    assert crop.shape == (1, 3, 16, 16) and crop.min() >= -1 and crop.max() <= 1
    assert crop[0, :, :, 8].mean() > 0.9  # centre-cropped: the band fills the middle
    pad = load_image(tmp_path / "wide.png", 32, 16, fit="pad")  # non-square generators: height 32, width 16
    assert pad.shape == (1, 3, 32, 16)
    assert torch.allclose(pad[0, :, 0, 0], torch.full((3,), 128 / 127.5 - 1), atol=1e-6)  # padded rows
    Image.fromarray(np.full((20, 20), 200, np.uint8), "L").save(tmp_path / "gray.png")
    assert torch.allclose(load_image(tmp_path / "gray.png", 8), torch.full((1, 3, 8, 8), 200 / 127.5 - 1), atol=1e-5)
    rgba = np.zeros((20, 20, 4), np.uint8)  # fully transparent: white after compositing
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    assert torch.allclose(load_image(tmp_path / "rgba.png", 8), torch.ones(1, 3, 8, 8), atol=1e-5)
    Image.fromarray(np.full((20, 20), 65535 // 2, np.uint16)).save(tmp_path / "deep.png")
    assert abs(load_image(tmp_path / "deep.png", 8).mean().item()) < 0.02  # half of 16-bit white: mid grey


def test_exif_orientation_is_applied(tmp_path):
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :20] = 255  # white on the left, landscape
    img = Image.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when displayed: portrait, white on top
    img.save(tmp_path / "rot.jpg", exif=exif, quality=95)
    out = load_image(tmp_path / "rot.jpg", 32, fit="pad")
    top, bottom = out[0, :, 2:14, 16].mean(), out[0, :, 18:30, 16].mean()
    assert top > 0.8 and bottom < -0.8


def test_bad_images_raise_clear_errors(tmp_path):
    with pytest.raises(ImageLoadError, match="no such image"):
        load_image(tmp_path / "missing.png", 16)
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(ImageLoadError, match="could not be read"):
        load_image(tmp_path / "text.png", 16)
    Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(tmp_path / "dot.png")
    with pytest.raises(ImageLoadError, match="1x1"):
        load_image(tmp_path / "dot.png", 16)
    good = tmp_path / "good.png"
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(good)
    (tmp_path / "cut.png").write_bytes(good.read_bytes()[:60])
    with pytest.raises(ImageLoadError):
        load_image(tmp_path / "cut.png", 16)


def test_huge_images_are_reduced_with_a_warning(tmp_path):
    Image.new("RGB", (3000, 2000), (10, 200, 30)).save(tmp_path / "big.png")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = load_image(tmp_path / "big.png", 16, max_pixels=1_000_000)
    assert any("reduced" in str(w.message) for w in caught)
    assert out.shape == (1, 3, 16, 16) and abs(out[0, 1].mean().item() - (200 / 127.5 - 1)) < 0.01


# ---------------------------------------------------------------- LPIPS

def test_lpips_loads_a_backbone_from_a_weights_file(tmp_path):
    import torchvision

    torch.manual_seed(0)
    state = torchvision.models.alexnet(weights=None).state_dict()
    torch.save(state, tmp_path / "alexnet-owt-7be5be79.pth")
    model = load_lpips("alex", weights=tmp_path / "alexnet-owt-7be5be79.pth", download=False)
    assert torch.equal(model.net.slice1[0].weight, state["features.0.weight"])
    a, b = torch.rand(2, 3, 64, 64) * 2 - 1, torch.rand(2, 3, 64, 64) * 2 - 1
    d_same, d_diff = model(a, a).flatten(), model(a, b).flatten()
    assert torch.allclose(d_same, torch.zeros(2), atol=1e-6) and (d_diff > 0).all()


def test_missing_lpips_weights_name_the_file(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(LPIPSWeightsError, match="vgg16-397923af.pth") as e:
        load_lpips("vgg", download=False)
    assert str(tmp_path / "hub" / "checkpoints") in str(e.value)
    (tmp_path / "wrong.pth").write_bytes(b"")
    torch.save({"features.0.weight": torch.zeros(1)}, tmp_path / "wrong.pth")
    with pytest.raises(LPIPSWeightsError, match="lack"):
        load_lpips("alex", weights=tmp_path / "wrong.pth")


def test_loss_names_are_checked():
    assert parse_loss("lpips+mse") == {"lpips": 1.0, "mse": 1.0}
    assert parse_loss({"mse": 0.5}) == {"mse": 0.5}
    with pytest.raises(ValueError, match="loss"):
        parse_loss("l2")


# ---------------------------------------------------------------- projection and tuning (tiny generator)

def test_wplus_mse_projection_recovers_a_generated_image():
    G = tiny_generator(16)
    with torch.no_grad():
        ws = G.mapping(torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(3)), None)
        target = G.synthesis(ws)
    res = project(G, target, space="w+", loss="mse", num_steps=150, lr=0.1, w_avg_samples=500,
                  optimize_noise=False, progress=False)
    start = project(G, target, space="w+", loss="mse", num_steps=1, lr=0.0, w_avg_samples=500,
                    optimize_noise=False, progress=False)
    assert res.ws.shape == (1, G.num_ws, G.w_dim)
    assert psnr(res.image, target) > psnr(start.image, target) + 6
    assert res.distances[-1] < res.distances[0]


def test_projection_leaves_the_callers_generator_alone_and_noise_applies():
    G = tiny_generator(16)
    before = {k: v.clone() for k, v in G.state_dict().items()}
    target = torch.zeros(1, 3, 16, 16)
    res = project(G, target, num_steps=5, loss="mse", w_avg_samples=100, progress=False)
    assert all(torch.equal(before[k], v) for k, v in G.state_dict().items())
    G2 = apply_noise(G, res.noise)
    with torch.no_grad():
        assert torch.allclose(G2.synthesis(res.ws), res.image, atol=1e-5)
    for v in res.noise.values():  # renormalised after every step
        assert abs(v.mean().item()) < 1e-4 and abs(v.square().mean().item() - 1) < 1e-3


def test_projection_checks_its_input():
    G = tiny_generator(16)
    with pytest.raises(ValueError, match="target must be"):
        project(G, torch.zeros(1, 3, 32, 32), progress=False)
    with pytest.raises(ValueError, match="space"):
        project(G, torch.zeros(1, 3, 16, 16), space="z", progress=False)
    with pytest.raises(ValueError, match="LPIPS"):
        project(G, torch.zeros(1, 3, 16, 16), num_steps=1, w_avg_samples=10, progress=False)


def test_pivotal_tuning_improves_the_reconstruction_and_keeps_mapping():
    G = tiny_generator(16)
    target = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    pivot = project(G, target, space="w+", loss="mse", num_steps=40, w_avg_samples=200, optimize_noise=False,
                    progress=False)
    tuned = pivotal_tune(G, target, pivot.ws, num_steps=60, lr=3e-3, lpips_weight=0.0, progress=False)
    assert psnr(tuned.image, target) > psnr(pivot.image, target) + 1
    for k, v in G.mapping.state_dict().items():
        assert torch.equal(tuned.G.mapping.state_dict()[k], v)
    with pytest.raises(ValueError, match="ws_pivot"):
        pivotal_tune(G, target, pivot.ws[:, :2], lpips_weight=0.0, progress=False)


def test_saved_inversion_with_a_foreign_latent_is_refused(tmp_path):
    from draggan.checkpoint import save_generator
    from inversion.run import GENERATOR_FILE, INVERSION_FILE, load_inversion

    G = tiny_generator(16)
    save_generator(G, tmp_path / GENERATOR_FILE)
    np.savez(tmp_path / INVERSION_FILE, ws=np.zeros((1, G.num_ws + 2, G.w_dim), np.float32))
    (tmp_path / "results.json").write_text("{}")
    with pytest.raises(ValueError, match="does not fit the generator"):
        load_inversion(tmp_path)


def test_lpips_projection_and_tuning_run_through_the_real_loading_code(tmp_path):
    import torchvision

    torch.manual_seed(0)
    torch.save(torchvision.models.vgg16(weights=None).state_dict(), tmp_path / "vgg16-397923af.pth")
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), tmp_path / "alexnet-owt-7be5be79.pth")
    vgg = load_lpips("vgg", weights=tmp_path / "vgg16-397923af.pth", download=False)
    alex = load_lpips("alex", weights=tmp_path / "alexnet-owt-7be5be79.pth", download=False)
    G = tiny_generator(32)
    target = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    res = project(G, target, loss="lpips+mse", num_steps=30, w_avg_samples=200, lpips_model=vgg, progress=False)
    assert res.distances[-1] < res.distances[0]
    tuned = pivotal_tune(G, target, res.ws, num_steps=10, lr=1e-3, lpips_model=alex, locality_regularization=True,
                         progress=False)
    assert np.isfinite(tuned.losses).all() and tuned.losses[-1] < tuned.losses[0]


def test_face_alignment_puts_the_eyes_level_and_centred(tmp_path):
    from inversion.images import align_face

    # A tilted "face": two dark eyes and two mouth corners on a grey photo, rotated by 20 degrees.
    img = Image.new("RGB", (400, 320), (128, 128, 128))
    from PIL import ImageDraw

    d = ImageDraw.Draw(img)
    a = math.radians(20)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    c = np.array([200.0, 160.0])
    pts = [c + rot @ np.array(p) for p in [(-20, -10), (20, -10), (-14, 25), (14, 25)]]
    for x, y in pts[:2]:
        d.ellipse([x - 4, y - 4, x + 4, y + 4], fill=(0, 0, 0))
    img.save(tmp_path / "face.png")
    out = align_face(tmp_path / "face.png", pts, 64)
    assert out.shape == (1, 3, 64, 64)
    dark = (out[0].mean(0) < -0.5).nonzero().float()
    left, right = dark[dark[:, 1] < 32], dark[dark[:, 1] >= 32]
    assert len(left) and len(right)
    assert abs(left[:, 0].mean() - right[:, 0].mean()) < 1.0  # eyes level after alignment
    assert abs((left[:, 1].mean() + right[:, 1].mean()) / 2 - 31.5) < 1.0  # and centred
    with pytest.raises(ValueError, match="four"):
        align_face(tmp_path / "face.png", pts[:3], 64)
