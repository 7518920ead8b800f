"""The toy-faces renderer, its dataset writer and the landmark detector."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from draggan.apps.toyfaces.dataset import read_dataset, write_dataset
from draggan.apps.toyfaces.detector import LandmarkDetector, ParamNet, denormalise_params, load_detector, normalise_params
from draggan.apps.toyfaces.renderer import (LANDMARKS, PARAM_NAMES, PARAMS, landmarks, render, render_seeds,
                                       sample_params)


def test_domain_has_enough_parameters_and_landmarks():
    assert len(PARAMS) >= 12 and len(LANDMARKS) >= 12
    assert len(set(PARAM_NAMES)) == len(PARAMS) and len(set(LANDMARKS)) == len(LANDMARKS)
    assert all(p.low < p.high for p in PARAMS)


def test_render_is_deterministic_by_seed_and_in_range():
    a, pa, la = render_seeds([3, 4], 64)
    b, pb, lb = render_seeds([4], 64)
    assert a.shape == (2, 3, 64, 64) and la.shape == (2, len(LANDMARKS), 2)
    assert torch.equal(a[1:], b) and torch.equal(pa[1:], pb) and torch.equal(la[1:], lb)
    assert (a[0] - a[1]).abs().mean() > 0.05  # two seeds, two faces
    assert a.min() >= -1 and a.max() <= 1
    assert la.min() >= 0 and la.max() <= 63


def test_render_is_anti_aliased():
    img = render(sample_params(1, 0), 64)
    levels = torch.unique((img * 127.5 + 128).round())
    assert len(levels) > 200  # hard edges would leave a handful of colours


def test_landmarks_follow_the_pixel_convention():
    # An upright face: the chin landmark is where the head's coverage crosses one half on the
    # column of the chin (origin at the centre of the top-left pixel).
    params = sample_params(1, 1)
    params[0, PARAM_NAMES.index("head_roll")] = 0.0
    params[0, PARAM_NAMES.index("head_x")] = 0.5 + 0.5 / 64  # the chin on a pixel column
    chin = landmarks(params, 64)[0, LANDMARKS.index("chin")]
    x = int(round(chin[0].item()))
    assert abs(chin[0].item() - x) < 1e-5
    bg_only = params.clone()
    bg_only[0, PARAM_NAMES.index("head_y")] = 5.0  # move the head out of the image
    img, bg = render(params, 64)[0, :, :, x], render(bg_only, 64)[0, :, :, x]
    y0 = int(chin[1].item()) - 3
    diff = img[:, y0:y0 + 1] - bg[:, y0:y0 + 1]  # skin minus background, just above the chin
    cover = ((img - bg) * diff).sum(0) / (diff ** 2).sum(0).clamp_min(1e-8)
    rows = torch.arange(64, dtype=torch.float32)
    below = [r for r in range(y0, 63) if cover[r] >= 0.5 > cover[r + 1]][0]
    crossing = rows[below] + (cover[below] - 0.5) / (cover[below] - cover[below + 1])
    assert abs(crossing.item() - chin[1].item()) < 0.35


def test_landmarks_move_with_the_head():
    params = sample_params(1, 2)
    moved = params.clone()
    moved[0, PARAM_NAMES.index("head_x")] += 5 / 64
    d = landmarks(moved, 64) - landmarks(params, 64)
    assert torch.allclose(d[..., 0], torch.full_like(d[..., 0], 5.0), atol=1e-4)
    assert torch.allclose(d[..., 1], torch.zeros_like(d[..., 1]), atol=1e-4)


def test_bad_params_are_refused():
    with pytest.raises(ValueError, match="params must be"):
        render(torch.zeros(2, 3))


def test_dataset_round_trip(tmp_path):
    ds = write_dataset(tmp_path / "faces", 5, resolution=64, seed=7, batch=2, progress=False)
    back = read_dataset(tmp_path / "faces")
    assert len(back.images) == 5 and back.params.shape == (5, len(PARAMS))
    np.testing.assert_array_equal(back.landmarks, ds.landmarks)
    png = np.asarray(Image.open(back.images[3]))
    again = render(torch.from_numpy(back.params[3:4]), 64)
    np.testing.assert_array_equal(png, (again[0] * 127.5 + 128).clamp(0, 255).byte().permute(1, 2, 0).numpy())
    np.testing.assert_allclose(back.landmarks[3], landmarks(torch.from_numpy(back.params[3:4]), 64)[0].numpy(), atol=1e-5)


def test_interrupted_dataset_is_refused(tmp_path):
    (tmp_path / "images").mkdir()
    with pytest.raises(FileNotFoundError, match="interrupted"):
        read_dataset(tmp_path)


@pytest.fixture(scope="module")
def detector():
    return load_detector()


def test_shipped_detector_is_sub_half_pixel_on_held_out_renders(detector):
    imgs, _, truth = render_seeds(range(2_000_000, 2_000_016), 64)
    det = detector(imgs)
    err = (det.landmarks - truth).norm(dim=-1)
    assert err.mean() <= 0.5, f"mean error {err.mean():.3f} px"
    assert det.detected.all()


def test_detector_rejects_what_is_not_a_face(detector):
    noise = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    flat = torch.zeros(1, 3, 64, 64)
    det = detector(torch.cat([noise, flat]))
    assert (~det.detected.all(dim=1)).all()
    assert det.confidence.mean() < 0.5


def test_detector_checks_its_input(detector):
    with pytest.raises(ValueError, match="images must be"):
        detector(torch.zeros(1, 3, 32, 32))


def test_missing_detector_weights_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.safetensors"):
        load_detector(tmp_path / "nothing.safetensors")


def test_refinement_improves_a_rough_guess():
    # A perturbed guess of the parameters, then the analysis-by-synthesis fit: the landmarks end near the truth.
    torch.manual_seed(0)
    det = LandmarkDetector(ParamNet(64))
    imgs, params, truth = render_seeds([5], 64)
    rough = (normalise_params(params) + 0.06 * torch.randn_like(params)).clamp(0, 1)
    before = (landmarks(denormalise_params(rough), 64) - truth).norm(dim=-1).mean()
    after = (landmarks(denormalise_params(det.fit(imgs, rough)), 64) - truth).norm(dim=-1).mean()
    assert before > 0.5 and after < 0.2 * before, (before, after)


def test_one_face_at_every_size():
    # The same parameters give the same face at 64 and 128 px: landmarks scale about the image's corner
    # (pixel centres at integer coordinates), and the 128-px render box-filtered to 64 px is the 64-px render.
    params = sample_params(4, 3)
    p64, p128 = landmarks(params, 64), landmarks(params, 128)
    assert torch.allclose((p64 + 0.5) * 2 - 0.5, p128, atol=1e-4)
    small = torch.nn.functional.avg_pool2d(render(params, 128), 2)
    diff = (small - render(params, 64)).abs()
    assert diff.mean() < 0.02 and diff.max() < 1.0  # only the anti-aliased edges differ, and by less than a step


def test_the_64px_network_serves_larger_images(detector):
    # One network for every size: its first guess on a 128-px image is its guess on the image box-filtered
    # to 64 px, and the fit runs coarse to fine up to 128 px with a confidence window scaled to the image.
    det128 = load_detector(resolution=128)
    assert det128.level_resolutions == (64, 128, 128) and det128.window == 13
    assert load_detector(resolution=256).level_resolutions == (64, 128, 256)
    imgs, params, _ = render_seeds([7], 128)
    guess = det128.initial_params(imgs)
    assert torch.allclose(guess, detector.initial_params(torch.nn.functional.avg_pool2d(imgs, 2)))
    truth = normalise_params(params)
    assert (guess - truth).abs().mean() < 0.75 * (0.5 - truth).abs().mean()  # better than the ranges' middle
    with pytest.raises(ValueError, match="not a multiple"):
        load_detector(resolution=96)


@pytest.mark.slow
def test_the_64px_network_detects_at_128px_and_256px_within_half_a_pixel():
    for res in (128, 256):
        imgs, _, truth = render_seeds(range(2_000_000, 2_000_003), res)
        noise = torch.rand(1, 3, res, res, generator=torch.Generator().manual_seed(0)) * 2 - 1
        det = load_detector(resolution=res)(torch.cat([imgs, noise]))
        err = (det.landmarks[:3] - truth).norm(dim=-1)
        assert err.mean() <= 0.5, f"{res} px: mean error {err.mean():.3f} px"
        assert det.detected[:3].all() and not det.detected[3].all() and det.confidence[3].mean() < 0.5


def test_the_256px_render_stays_on_the_gpu():
    # The trainer renders each batch on its device: every tensor of the renderer follows the parameters'
    # device (a CPU tensor in a CUDA computation raises here), checked on fake CUDA tensors without a GPU.
    from torch._subclasses.fake_tensor import FakeTensorMode

    from draggan.apps.toyfaces import renderer

    mode = FakeTensorMode()
    params = mode.from_tensor(sample_params(2, 0), static_shapes=True)
    renderer._colour.cache_clear()
    try:
        with mode:
            on_gpu = params.to("cuda")
            img, pts = render(on_gpu, 256), landmarks(on_gpu, 256)
    finally:
        renderer._colour.cache_clear()  # its cache would otherwise hold fake tensors
    assert img.shape == (2, 3, 256, 256) and img.device.type == "cuda" and pts.device.type == "cuda"
