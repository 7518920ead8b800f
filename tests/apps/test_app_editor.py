"""The web editor's model (`draggan.apps.editor.editor`), without HTTP or a browser: a tiny random generator
for the mechanics, the embedded toy-faces model where a drag must really move a handle."""

from __future__ import annotations

import dataclasses
import io
import json
import time
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from draggan.apps.editor.editor import (
    Busy,
    Editor,
    EditorError,
    EditorLimits,
    GeneratorChoice,
)
from draggan.latents import initial_latent
from draggan.loading import load_generator
from draggan.registry import DEFAULT_MODEL
from draggan.session import DragSession
from draggan.session_io import save_session
from draggan.settings import DragConfig
from inversion.domain import check_domain
from tests.conftest import tiny_generator

TOY = DragConfig.for_generator(DEFAULT_MODEL)  # toy-faces-64's own settings, from draggan/registry.py


@pytest.fixture(scope="module")
def toy():
    return load_generator("toy-faces-64", device="cpu")


def make_editor(G, tmp_path, *, drag=TOY, invert=None, **limits):
    generators = {"toy": G, "tiny": tiny_generator(32)}
    choices = [GeneratorChoice("toy", "toy", drag), GeneratorChoice("tiny", "tiny", DragConfig(feature_block=2))]
    return Editor(choices, load=lambda source: generators[source], invert=invert, out_dir=tmp_path / "saved",
                  limits=EditorLimits(**limits))


def wait(check, timeout=60.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if check():
            return
        time.sleep(0.02)
    raise AssertionError("timed out")


def drag(tab, handle, target) -> dict:
    """Set one point pair, run the drag until it stops, and return the tab's state."""
    tab.set_points([handle], [target])
    tab.start()
    wait(lambda: not tab.running)
    return tab.snapshot()


def png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def test_drag_moves_the_handle_and_undo_returns(toy, tmp_path):
    ed = make_editor(toy, tmp_path)
    tab = ed.open()
    tab.generate("toy", 0)
    start_image = tab.image.copy()
    assert tab.snapshot()["size"] == [64, 64] and tab.status == "idle"
    st = drag(tab, [26, 44], [26, 56])
    assert st["status"] == "done" and st["step"] > 3
    assert np.hypot(st["handles"][0][0] - 26, st["handles"][0][1] - 56) <= 1.0
    assert not np.array_equal(tab.image, start_image)
    assert st["origins"] == [[26.0, 44.0]]
    # the history: a preview of step k equals the image after undo(k)
    k = st["step"] // 2
    preview = np.asarray(Image.open(io.BytesIO(tab.preview(k))))
    tab.undo(k)
    assert tab.snapshot()["step"] == k and np.array_equal(preview, tab.image)
    assert tab.session.history[-1].handles == [tuple(h) for h in tab.snapshot()["handles"]]
    tab.undo(0)
    assert tab.snapshot()["handles"] == [[26.0, 44.0]] and np.array_equal(tab.image, start_image)
    with pytest.raises(EditorError, match="step must be in 0..0"):
        tab.undo(5)


def test_pause_stops_stepping_and_start_continues(toy, tmp_path):
    slow = dataclasses.replace(TOY, lr=1e-5, max_steps=5000)  # far from done for a long time
    ed = make_editor(toy, tmp_path, drag=slow)
    tab = ed.open()
    tab.generate("toy", 1)
    tab.set_points([[10, 10]], [[50, 50]])
    tab.start()
    wait(lambda: tab.snapshot()["step"] >= 3)
    tab.pause()
    step = tab.snapshot()["step"]
    assert tab.status == "idle" and not tab.running
    time.sleep(0.3)
    assert tab.snapshot()["step"] == step  # no step after pause returned
    tab.start()
    wait(lambda: tab.snapshot()["step"] > step + 2)
    tab.reset()
    st = tab.snapshot()
    assert st["step"] == 0 and st["handles"] == [[10.0, 10.0]] and not st["running"]


def test_new_points_after_a_drag_start_a_segment_and_undo_crosses_it(toy, tmp_path):
    ed = make_editor(toy, tmp_path, drag=dataclasses.replace(TOY, max_steps=6))
    tab = ed.open()
    tab.generate("toy", 2)
    first = drag(tab, [30, 30], [30, 40])
    assert first["step"] == 6  # the step limit
    ws_after_first = tab._current_ws().clone()
    moved = first["handles"][0]
    tab.set_points([moved, [20, 20]], [[30, 40], [22, 22]])
    assert len(tab.past) == 1 and tab.session is None
    tab.start()
    wait(lambda: not tab.running)
    assert tab.snapshot()["step"] == 12 and tab.snapshot()["segment_start"] == 6
    assert torch.equal(tab.session.ws0, ws_after_first)  # the new segment starts where the first ended
    tab.undo(3)  # back into the first segment: its points come back
    st = tab.snapshot()
    assert st["step"] == 3 and len(st["handles"]) == 1 and st["targets"] == [[30.0, 40.0]] and not tab.past


def test_bad_points_mask_and_seed_are_refused_with_a_message(toy, tmp_path):
    tab = make_editor(toy, tmp_path).open()
    with pytest.raises(EditorError, match="choose a generator"):
        tab.set_points([[1, 1]], [[2, 2]])
    tab.generate("toy", 0)
    with pytest.raises(EditorError, match=r"handles\[0\] = \(70, 3\) lies outside the 64x64 image"):
        tab.set_points([[70, 3]], [[2, 2]])
    with pytest.raises(EditorError, match="every handle needs a target"):
        tab.set_points([[1, 1]], [])
    for bad in (["a", 1], [10**400, 1], [True, 1], [1e400, 1], [1, 2, 3]):
        with pytest.raises(EditorError, match=r"handles\[0\] must (hold two finite numbers|be an \[x, y\] pair)"):
            tab.set_points([bad], [[1, 1]])
    with pytest.raises(EditorError, match="add a point pair first"):
        tab.start()
    with pytest.raises(EditorError, match="seed must be a whole number"):
        tab.generate("toy", "x")
    with pytest.raises(EditorError, match="unknown generator 'nope'"):
        tab.generate("nope", 0)
    with pytest.raises(EditorError, match="not an image"):
        tab.set_mask(b"hello")
    with pytest.raises(EditorError, match="the mask is 8x8, the image is 64x64"):
        tab.set_mask(png(np.zeros((8, 8, 4), np.uint8)))
    assert tab.snapshot()["handles"] == [] and tab.status == "idle"  # nothing changed
    tab.set_points([[1, 1]], [[2, 2]])
    tab.set_points([], [])  # "clear points"
    assert tab.snapshot()["handles"] == [] and tab.snapshot()["message"] == "points cleared"


def test_mask_limits_the_change_to_the_painted_region(toy, tmp_path):
    """The painted mask reaches the drag: outside it the image changes far less than without a mask."""
    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[34:64, 0:64] = (255, 196, 0, 255)  # the lower part of the face may move
    change = {}
    for masked in (False, True):
        ed = make_editor(toy, tmp_path, drag=dataclasses.replace(TOY, max_steps=30))
        tab = ed.open()
        tab.generate("toy", 0)
        start = tab.image.astype(float)
        if masked:
            tab.set_mask(png(rgba))
            assert tab.snapshot()["has_mask"] and tab.mask[40, 10] and not tab.mask[10, 10]
        drag(tab, [32, 41], [32, 47])
        assert (tab.session.mask is not None) == masked
        change[masked] = np.abs(tab.image.astype(float) - start).mean(axis=2)[:30].mean()
        if masked:
            tab.set_mask(None)
            assert tab.mask is None
    assert change[False] > 2.0 and change[True] < 0.25 * change[False], change


def test_save_zip_loads_back_and_holds_the_drag_script_files(toy, tmp_path):
    ed = make_editor(toy, tmp_path, drag=dataclasses.replace(TOY, max_steps=8))
    tab = ed.open()
    tab.generate("toy", 3)
    saved = drag(tab, [32, 32], [36, 36])
    name, data = tab.save()
    assert name.endswith(".zip")
    zf = zipfile.ZipFile(io.BytesIO(data))
    assert {"session.json", "latent.npz", "before.png", "after.png", "drag.gif"} <= set(zf.namelist())
    meta = json.loads(zf.read("session.json"))
    assert meta["generator"] == "toy" and meta["steps"] == saved["step"]
    folders = list((tmp_path / "saved").iterdir())
    assert len(folders) == 1 and (folders[0] / "latent.npz").is_file()

    other = ed.open()
    other.load({"session.zip": data})
    st = other.snapshot()
    assert st["step"] == saved["step"] and np.allclose(st["handles"], saved["handles"])
    assert np.array_equal(other.image, tab.image)
    other.undo(0)  # the loaded history is complete
    assert other.snapshot()["handles"] == [[32.0, 32.0]]


def test_load_reads_a_folder_of_the_drag_script(toy, tmp_path):
    """session.json + latent.npz as `scripts/drag.py` writes them (through `save_session`)."""
    session = DragSession(toy, initial_latent(toy, 4, 0.7), [[30, 40]], [[30, 44]], config=TOY)
    for _ in range(3):
        session.step()
    folder = save_session(session, tmp_path / "run", generator="toy")
    tab = make_editor(toy, tmp_path).open()
    tab.load({"session.json": (folder / "session.json").read_bytes(),
              "latent.npz": (folder / "latent.npz").read_bytes()})
    assert tab.snapshot()["step"] == 3 and tab.snapshot()["handles"] == [list(h) for h in session.handles]
    with pytest.raises(EditorError, match="missing: latent.npz"):
        tab.load({"session.json": b"{}"})
    with pytest.raises(EditorError, match="not a zip file"):
        tab.load({"x.zip": b"nope"})
    meta = json.loads((folder / "session.json").read_text())
    meta["generator"] = "stylegan2-ffhq-512"
    with pytest.raises(EditorError, match="unknown generator 'stylegan2-ffhq-512'"):
        tab.load({"session.json": json.dumps(meta).encode(), "latent.npz": (folder / "latent.npz").read_bytes()})


def test_upload_inverts_in_the_background_with_progress(toy, tmp_path):
    calls = []

    def invert(G, path, callback, on_domain):
        img = Image.open(path)
        calls.append(img.size)
        for i in range(1, 6):
            callback("projection", i, 5)
            time.sleep(0.02)
        on_domain(check_domain("toy-faces-64", "mse", 40.0, num_steps=500))  # inside: nothing to warn about
        return G, initial_latent(G, 9, 0.7)

    ed = make_editor(toy, tmp_path, invert=invert, max_upload_bytes=200_000)
    tab = ed.open()
    tab.upload(png(np.full((100, 80, 3), 128, np.uint8)), "grey.png")
    assert tab.status == "inverting"
    with pytest.raises(Busy):
        tab.upload(png(np.zeros((20, 20, 3), np.uint8)), "again.png")
    wait(lambda: tab.status == "idle")
    st = tab.snapshot()
    assert calls == [(80, 100)] and st["source"] == "grey.png, inverted into toy" and st["progress"] is None
    assert st["domain"]["outside"] is False and st["domain_warning"] is None and st["level"] == "info"
    with pytest.raises(EditorError, match="the upload could not be read as an image: not an image"):
        tab.upload(b"GIF89a but not really", "fake.gif")
    with pytest.raises(EditorError, match=r"the upload is 0.286 MB; the limit is 0.191 MB"):
        tab.upload(b"\0" * 300_000, "big.png")
    assert tab.status == "idle"


def test_a_photo_outside_the_models_domain_is_flagged_while_it_is_edited(toy, tmp_path, monkeypatch):
    """The inversion the app runs (inversion.run.invert_photo) on a portrait with the toy face model: the page's
    state carries the warning until another image is shown, and the saved tuned generator says so. The threshold's
    step count is lowered to the test's short projection (the measured threshold: tests/inversion/test_domain.py)."""
    from functools import partial

    from safetensors import safe_open

    from draggan.registry import MODELS
    from inversion.configs import InversionSettings, PTISettings
    from inversion.domain import outside_photos
    from inversion.run import invert_photo

    monkeypatch.setitem(MODELS, "toy-faces-64", dataclasses.replace(MODELS["toy-faces-64"], domain_steps=20))
    settings = InversionSettings(loss="mse", num_steps=20, w_avg_samples=500, pti=PTISettings(enabled=False))
    ed = make_editor(toy, tmp_path, invert=partial(invert_photo, s=settings))
    tab = ed.open()
    portrait = outside_photos(64, 64)["grace_hopper"][0].permute(1, 2, 0)
    tab.upload(png(((portrait + 1) * 127.5).to(torch.uint8).numpy()), "portrait.png")
    wait(lambda: tab.status == "idle")
    st = tab.snapshot()
    assert st["domain"]["outside"] is True and "OUTSIDE the domain of toy-faces-64" in st["domain_warning"]
    assert st["level"] == "warning" and st["message"] == st["domain_warning"]
    tab.set_points([[32, 40]], [[32, 42]])
    assert tab.snapshot()["message"] == "1 point pair" and tab.snapshot()["domain_warning"] == st["domain_warning"]
    _, data = tab.save()
    (tmp_path / "tuned.safetensors").write_bytes(zipfile.ZipFile(io.BytesIO(data)).read("generator.safetensors"))
    with safe_open(str(tmp_path / "tuned.safetensors"), framework="pt") as f:
        assert f.metadata()["outside_domain"] == "true"
    tab.generate("toy", 0)
    assert tab.snapshot()["domain_warning"] is None and tab.snapshot()["domain"] is None


def test_failed_inversion_is_reported_and_the_tab_keeps_working(toy, tmp_path):
    def invert(G, path, callback, on_domain):
        raise FileNotFoundError("vgg16-397923af.pth is missing: put it in ~/.cache/torch/hub/checkpoints")

    tab = make_editor(toy, tmp_path, invert=invert).open()
    tab.generate("toy", 0)
    tab.upload(png(np.zeros((20, 20, 3), np.uint8)), "a.png")
    wait(lambda: tab.status != "inverting")
    st = tab.snapshot()
    assert st["level"] == "error" and "vgg16-397923af.pth is missing" in st["message"] and st["status"] == "idle"
    tab.set_points([[1, 1]], [[2, 2]])  # still usable


def test_tabs_are_independent_and_closed_or_silent_ones_are_freed(toy, tmp_path):
    ed = make_editor(toy, tmp_path, drag=dataclasses.replace(TOY, lr=1e-5, max_steps=5000),
                     session_timeout=0.3, max_sessions=2)
    a, b = ed.open(), ed.open()
    with pytest.raises(Busy, match="2 tabs are open"):
        ed.open()
    a.generate("toy", 0)
    a.set_points([[10, 10]], [[50, 50]])
    a.start()
    b.generate("tiny", 5)
    assert a.snapshot()["generator"] == "toy" and b.snapshot()["size"] == [32, 32]
    wait(lambda: a.snapshot()["step"] > 2)
    assert b.snapshot()["step"] == 0 and a.snapshot()["running"]
    workdir = b.workdir
    assert ed.close(b.sid) and ed.get(b.sid) is None and not workdir.exists()
    a.pause()
    time.sleep(0.5)
    assert ed.reap() == 1 and not ed.sessions and a.closed and a.G is None


def test_long_poll_returns_on_a_change(toy, tmp_path):
    tab = make_editor(toy, tmp_path).open()
    tab.generate("toy", 0)
    v = tab.snapshot()["version"]
    t0 = time.time()
    assert tab.snapshot(v, timeout=0.3)["version"] == v and time.time() - t0 >= 0.25
    assert "image" not in tab.snapshot(v)  # the image is sent only when it changed
    import threading

    threading.Timer(0.1, lambda: tab.set_points([[1, 1]], [[2, 2]])).start()
    t0 = time.time()
    st = tab.snapshot(v, timeout=5)
    assert st["version"] > v and time.time() - t0 < 2


def test_a_stalled_drag_says_so_in_the_status(toy, tmp_path):
    """A drag that cannot move (lr 1e-9) is told as stalled, with what to try, while it runs and when it stops."""
    ed = make_editor(toy, tmp_path, drag=dataclasses.replace(TOY, method="draggan", lr=1e-9, stall_steps=4,
                                                             max_steps=7))  # DragGAN's tracked handles stand still
    tab = ed.open()
    tab.generate("toy", 0)
    st = drag(tab, [32, 40], [32, 46])
    assert st["step"] == 7 and st["status"] == "idle" and st["level"] == "warning"
    assert "step limit" in st["message"] and "stalled: no handle has moved" in st["message"]
    assert "larger learning rate" in st["message"] and st["stalled"]
