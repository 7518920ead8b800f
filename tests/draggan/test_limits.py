"""The limits of `draggan.limits` where the library and the command line read files: points, masks and
photos (sizes from the header), npz arrays (shapes from the header), saved sessions (truncated or
malformed files named), and drag settings (NaN and out-of-range values refused in one line)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PIL import Image

from draggan.image_io import load_mask
from draggan.limits import MAX_POINTS
from draggan.points import parse_points
from draggan.session import DragSession
from draggan.session_io import load_session, save_session
from draggan.settings import DragConfig
from tests.conftest import tiny_generator
from tests.helpers.hostile_files import huge_png, npz_bomb


@pytest.mark.parametrize("setting, value", [
    ("stop_distance", math.nan), ("stop_distance_many", math.inf), ("lr", math.nan), ("lr", -1.0), ("lr", math.inf),
    ("r1", 0.0), ("r2", math.nan), ("lambda_mask", -1.0), ("min_radius", math.nan), ("max_steps", 1.5),
    ("max_steps", 10**9), ("optimize_ws", 0), ("feature_block", -1), ("many_handles", True),
    ("official_grid", "yes"), ("force_fp32", 1), ("divergence_ratio", math.nan), ("divergence_ratio", 0.5),
    ("noise_mode", "loud"), ("tracking_distance", "l3"), ("latent_space", "z"),
])
def test_bad_drag_settings_are_refused_in_one_line(setting, value):
    with pytest.raises(ValueError, match=f"drag setting {setting}=") as e:
        DragConfig(**{setting: value}).validate()
    assert "\n" not in str(e.value)


def test_a_nan_stop_distance_never_reaches_the_drag():
    G = tiny_generator(16)
    ws = G.mapping(G.mapping.fc0.weight.new_ones(1, 16), None)
    with pytest.raises(ValueError, match="stop_distance=nan must be a finite number"):
        DragSession(G, ws, [[4, 4]], [[8, 8]], config=DragConfig(feature_block=1, stop_distance=math.nan))


def test_default_and_preset_settings_pass():
    DragConfig().validate()
    DragConfig.preset("official").validate()


def test_points_of_the_command_line_are_capped(tmp_path):
    rows = [[1, 1, 2, 2]] * (MAX_POINTS + 1)
    with pytest.raises(ValueError, match=f"at most {MAX_POINTS}"):
        parse_points(rows)
    (tmp_path / "p.json").write_text(json.dumps(rows))
    with pytest.raises(ValueError, match=f"at most {MAX_POINTS}"):
        parse_points(str(tmp_path / "p.json"))
    (tmp_path / "cut.json").write_text(json.dumps(rows)[:20])
    with pytest.raises(ValueError, match="cut.json is truncated or not valid JSON"):
        parse_points(str(tmp_path / "cut.json"))
    assert len(parse_points(rows[:MAX_POINTS])[0]) == MAX_POINTS


def test_a_mask_of_the_wrong_size_is_refused_from_its_header(tmp_path):
    (tmp_path / "huge.png").write_bytes(huge_png(10_000, 10_000))
    with pytest.raises(ValueError, match="is 10000x10000, the image is 64x64"):
        load_mask(tmp_path / "huge.png", (64, 64))
    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[:32] = (255, 196, 0, 255)  # painted, as the editor sends it
    Image.fromarray(rgba).save(tmp_path / "painted.png")
    Image.fromarray(np.where(np.arange(64)[:, None] < 32, 255, 0).astype(np.uint8).repeat(64, 1)).save(tmp_path / "w.png")
    for name in ("painted.png", "w.png"):  # one mask encoding: painted or white = may move
        mask = load_mask(tmp_path / name, (64, 64))
        assert mask[:32].all() and not mask[32:].any(), name


def test_a_photo_above_the_pixel_limit_is_refused_from_its_header(tmp_path):
    from inversion.images import ImageLoadError, load_image

    (tmp_path / "huge.png").write_bytes(huge_png(10_000, 10_000))
    with pytest.raises(ImageLoadError, match="10000x10000 pixels; at most 64 million"):
        load_image(tmp_path / "huge.png", 32)


def _saved(tmp_path, steps=2):
    G = tiny_generator(16)
    session = DragSession(G, G.mapping(G.mapping.fc0.weight.new_ones(1, 16), None), [[4, 4]], [[9, 9]],
                          config=DragConfig(feature_block=1))
    for _ in range(steps):
        session.step()
    return G, save_session(session, tmp_path / "run", generator="tiny")


def test_truncated_session_files_name_the_file(tmp_path):
    G, folder = _saved(tmp_path)
    data = (folder / "latent.npz").read_bytes()
    (folder / "latent.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="latent.npz is truncated"):
        load_session(folder, G)
    G, folder = _saved(tmp_path / "b")
    text = (folder / "session.json").read_text()
    (folder / "session.json").write_text(text[: len(text) // 2])
    with pytest.raises(ValueError, match="session.json is truncated or not valid JSON"):
        load_session(folder, G)


@pytest.mark.parametrize("change, message", [
    (lambda m: [m], "holds a list, not an object"),
    (lambda m: {**m, "steps": 5}, "a history of 2 entries for 5 steps"),
    (lambda m: {**m, "steps": "2"}, "gives '2' steps"),
    (lambda m: {**m, "config": None}, "lacks its config"),
    (lambda m: {**m, "handles": [[1, 1]] * (MAX_POINTS + 1)}, f"at most {MAX_POINTS}"),
    (lambda m: {**m, "config": {**m["config"], "stop_distance": float("nan")}}, "NaN is not a JSON number"),
    (lambda m: {**m, "config": {**m["config"], "stop_distance": -1.0}}, "stop_distance=-1"),
    # values a saved session never holds: refused when loaded, not when the edit starts or the page polls
    (lambda m: {**m, "history": [{**m["history"][0], "loss": "x"}, m["history"][1]]}, r"history\[0\].loss = 'x'"),
    (lambda m: {**m, "history": [m["history"][0], {**m["history"][1], "distances": [-1.0]}]}, r"history\[1\].distances"),
    (lambda m: {**m, "history": [{**m["history"][0], "step": 7}, m["history"][1]]}, r"history\[0\].step = '7'"),
    (lambda m: {**m, "history": [{**m["history"][0], "handles": [[1, 2], [3, 4]]}, m["history"][1]]},
     r"history\[0\].handles that are not a list of 1"),
    (lambda m: {**m, "history": [{**m["history"][0], "extra": 1}, m["history"][1]]}, "without the fields of a step"),
    (lambda m: {**m, "handles": [[1e30, 1e30]]}, "handles outside the 16x16 image"),
    (lambda m: {**m, "targets": [[4, "x"]]}, r"targets\[0\] = \[4, 'x'\]"),
    (lambda m: {**m, "targets": []}, "targets that are not a list of 1"),
    (lambda m: {**m, "history": [{**m["history"][0], "handles": [[-50, 3]]}, m["history"][1]]},
     r"history\[0\].handles outside the 16x16 image"),
    (lambda m: {**m, "generator": ["x"]}, "names its generator"),
])
def test_malformed_session_json_is_a_clear_error(tmp_path, change, message):
    G, folder = _saved(tmp_path)
    meta = json.loads((folder / "session.json").read_text())
    (folder / "session.json").write_text(json.dumps(change(meta)))
    with pytest.raises(ValueError, match=message):
        load_session(folder, G)


def test_latent_npz_shapes_are_read_before_the_data(tmp_path):
    G, folder = _saved(tmp_path)
    arrays = dict(np.load(folder / "latent.npz"))
    bomb = npz_bomb({k: v for k, v in arrays.items() if k != "ws0"}, "ws0", 2**24)
    (folder / "latent.npz").write_bytes(bomb)
    with pytest.raises(ValueError, match=r"latent.npz unpacks to 671\d+ bytes; at most \d+ are read"):
        load_session(folder, G)  # 64 MB from 70 KB: more than floats inflate (the sizes of its directory)
    np.savez(folder / "latent.npz", **{**arrays, "ws0": np.zeros(2**20, np.float32)})  # stored: no inflation
    with pytest.raises(ValueError, match=r"array ws0 is float32 of shape \[1048576\]"):
        load_session(folder, G)  # the shape of its .npy header
    arrays["step1_free"] = np.zeros((1, 6, 999), np.float32)
    np.savez(folder / "latent.npz", **arrays)
    with pytest.raises(ValueError, match="step1_free"):
        load_session(folder, G)
    del arrays["step1_free"]
    np.savez(folder / "latent.npz", **arrays)
    with pytest.raises(ValueError, match="lacks step1_free"):
        load_session(folder, G)
    np.savez(folder / "latent.npz", **{**arrays, "step1_free": np.array([object()], dtype=object)})
    with pytest.raises(ValueError, match="step1_free is object"):
        load_session(folder, G)


@pytest.mark.parametrize("change, message", [
    (lambda a: a["ws0"].fill(np.nan), "array ws0 holds NaN or infinite values"),
    (lambda a: a["step1_free"].fill(np.inf), "array step1_free holds NaN or infinite values"),
    (lambda a: a["step1_adam_exp_avg_sq"].fill(np.nan), "array step1_adam_exp_avg_sq holds NaN"),
    (lambda a: a["step0_handles_rc"].fill(1e30), "array step0_handles_rc puts handles outside the 16x16 image"),
    (lambda a: a.update(step9_free=a["step1_free"]), "array step9_free is float32"),  # a step the session lacks
    (lambda a: a.update(stray=np.zeros(3, np.float32)), "array stray is float32"),
])
def test_latent_npz_values_are_checked_when_the_session_is_loaded(tmp_path, change, message):
    G, folder = _saved(tmp_path)
    arrays = dict(np.load(folder / "latent.npz"))
    change(arrays)
    np.savez_compressed(folder / "latent.npz", **arrays)
    with pytest.raises(ValueError, match=message) as e:
        load_session(folder, G)
    assert "\n" not in str(e.value)


def test_a_session_whose_step_loss_was_nan_still_loads(tmp_path):
    """save_session writes a NaN loss as null (JSON has no NaN): that is a session the project wrote."""
    G, folder = _saved(tmp_path)
    meta = json.loads((folder / "session.json").read_text())
    meta["history"][0]["loss"] = None
    (folder / "session.json").write_text(json.dumps(meta))
    assert math.isnan(load_session(folder, G).history[0].loss)


def test_a_session_round_trips(tmp_path):
    G, folder = _saved(tmp_path, steps=3)
    session = load_session(folder, G)
    assert len(session.history) == 3 and session.snapshots[2]["free"].shape == (1, 6, 16)
