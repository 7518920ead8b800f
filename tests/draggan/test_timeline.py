"""The timeline of an edit (`draggan.timeline.DragTimeline`), its frames (`draggan.render.DragFrames`) and the run
folder (`draggan.session_io.save_run`), without threads, on a tiny random generator."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from draggan.point_tracker import TrackingStep
from draggan.render import DragFrames, to_uint8
from draggan.session import DragSession
from draggan.session_io import load_session, read_session_meta
from draggan.settings import DragConfig
from draggan.timeline import DragTimeline
from tests.conftest import tiny_generator

CFG = DragConfig(feature_block=2, lr=0.01, max_steps=50)


@pytest.fixture(scope="module")
def G():
    return tiny_generator(32, seed=3)


def start_ws(G) -> torch.Tensor:
    return G.mapping(torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(1)), None)


def two_segments(G) -> tuple[DragTimeline, torch.Tensor]:
    """3 steps of one pair, then (points and a mask changed) 2 steps of two pairs; returns the timeline and the
    latent where the first segment ended."""
    tl = DragTimeline(G, start_ws(G), CFG)
    assert tl.set_points([[12, 14]], [[18, 14]])
    for _ in range(3):
        tl.step()
    end_of_first = tl.ws.clone()
    mask = np.zeros((32, 32), bool)
    mask[8:24, 8:24] = True
    assert tl.set_points([tl.handles[0], (20, 20)], [(18, 14), (22, 22)]) and tl.set_mask(mask)
    for _ in range(2):
        tl.step()
    return tl, end_of_first


def test_a_change_after_steps_begins_a_segment_from_the_current_latent(G):
    tl, end_of_first = two_segments(G)
    assert len(tl.past) == 1 and tl.steps == 5 and tl.offset == 3
    assert torch.equal(tl.session.ws0, end_of_first)
    assert len(tl.session.handles0_xy) == 2 and tl.session.mask is not None
    assert not tl.set_points(tl.handles, tl.targets) and not tl.set_mask(tl.mask)  # no change, no segment
    assert len(tl.past) == 1 and tl.session is not None
    tl.set_points([(5, 5)], [(6, 6)])
    tl.set_points([(5, 5)], [(7, 7)])  # a change before any step replaces the pending points, no empty segment
    assert len(tl.past) == 2 and tl.session is None and tl.steps == 5


def test_preview_equals_undo_at_every_step_across_segments(G):
    tl, _ = two_segments(G)
    previews = [tl.ws_at(k).clone() for k in range(tl.steps + 1)]
    assert torch.equal(previews[0], tl.ws_start) and torch.equal(previews[-1], tl.ws)
    assert all(not torch.equal(previews[k], previews[k + 1]) for k in range(5))  # every step moved the latent
    assert not tl.undo(5)  # already there
    tl.undo(4)  # inside the second segment: its two pairs and mask
    assert torch.equal(tl.ws, previews[4]) and tl.steps == 4 and len(tl.handles) == 2 and tl.mask is not None
    tl.undo(2)  # inside the first: its one pair, no mask; the second segment is gone
    assert torch.equal(tl.ws, previews[2]) and tl.steps == 2 and not tl.past
    assert tl.handles == tl.session.history[-1].handles and tl.targets == [(18.0, 14.0)] and tl.mask is None
    assert np.array_equal(tl.render(), to_uint8(tl.session.render(previews[2])))
    tl.undo(0)
    assert torch.equal(tl.ws, previews[0]) and tl.steps == 0 and tl.handles == [(12.0, 14.0)]
    tl.step()  # the drag goes on from there
    assert tl.steps == 1


def test_steps_outside_the_timeline_are_refused(G):
    tl, _ = two_segments(G)
    for bad in (-1, 6):
        with pytest.raises(ValueError, match=r"step must be in 0\.\.5"):
            tl.undo(bad)
        with pytest.raises(ValueError, match=r"step must be in 0\.\.5"):
            tl.ws_at(bad)
    fresh = DragTimeline(G, start_ws(G), CFG)
    assert torch.equal(fresh.ws_at(0), fresh.ws_start)
    with pytest.raises(ValueError, match="no points"):
        fresh.step()


def test_reset_returns_to_the_start_with_the_first_points(G):
    tl, _ = two_segments(G)
    tl.record_frame()
    tl.reset()
    assert tl.steps == 0 and torch.equal(tl.ws, tl.ws_start) and len(tl.frames) == 0
    assert tl.handles == [(12.0, 14.0)] and tl.targets == [(18.0, 14.0)] and tl.mask is None


def test_frames_follow_the_global_step_and_undo(G):
    tl = DragTimeline(G, start_ws(G), CFG)
    tl.set_points([[12, 14]], [[18, 14]])
    tl.record_frame()
    for _ in range(4):
        tl.step()
        tl.record_frame()
    assert [step for step, _ in tl.frames.items] == [0, 1, 2, 3, 4]
    assert tl.frames.pictures()[0].size == (256, 256)  # points_scale: 32 px -> 8x
    tl.record_frame(np.zeros((32, 32, 3), np.uint8))  # the same step again replaces its picture
    assert len(tl.frames) == 5 and np.asarray(tl.frames.pictures()[-1])[0, 0].tolist() == [0, 0, 0]
    tl.undo(2)
    assert [step for step, _ in tl.frames.items] == [0, 1, 2]
    tl.step()
    tl.record_frame()
    assert [step for step, _ in tl.frames.items] == [0, 1, 2, 3]


def test_the_run_callback_records_every_kth_step_and_the_last(G):
    session = DragSession(G, start_ws(G), [[12, 14]], [[18, 14]], config=DragConfig(feature_block=2, max_steps=5))
    frames = DragFrames.from_start(session)
    session.run(callback=frames.callback(every=2))
    assert len(session.history) == 5 and not session.done
    # state.step 0, 2, 4 (the 1st, 3rd and 5th steps); the picture of the start at 0
    assert [step for step, _ in frames.items] == [0, 1, 3, 5]
    start = frames.pictures()[0].resize((32, 32), Image.NEAREST)
    assert np.array_equal(np.asarray(start)[0], to_uint8(session.render(session.ws0))[0])


def test_save_writes_a_run_folder_that_loads_back(G, tmp_path):
    tl, _ = two_segments(G)
    tl.record_frame()
    files = tl.save(tmp_path / "run", generator="tiny")
    names = {p.name for p in (tmp_path / "run").iterdir()}
    assert names == {"before.png", "before_points.png", "after.png", "after_points.png", "drag.gif",
                     "session.json", "latent.npz", "drag_config.yaml"}
    assert set(files) == {"before", "after", "animation", "session", "latent"}
    assert read_session_meta(tmp_path / "run")["generator"] == "tiny"
    loaded = load_session(tmp_path / "run", G)  # the current segment: its own 2 steps, from its own start
    assert len(loaded.history) == 2 and torch.equal(loaded.ws0, tl.session.ws0)
    torch.testing.assert_close(loaded.ws, tl.ws, rtol=0, atol=0)
    assert np.array_equal(np.asarray(Image.open(files["before"])), tl.render(tl.session.ws0))
    assert np.array_equal(np.asarray(Image.open(files["after"])), tl.render())
    back = DragTimeline.from_session(loaded)
    assert back.steps == 2 and back.handles == tl.handles and np.array_equal(back.mask, tl.mask)
    assert [step for step, _ in back.frames.items] == [0]  # the loaded session's first picture
    back.undo(0)
    assert torch.equal(back.ws, tl.session.ws0)


def test_a_point_tracker_gets_and_returns_xy(G):
    """The tracker hook speaks (x, y): a tracker that moves every handle 1 px right moves them so."""
    seen: list[TrackingStep] = []

    def one_px_right(step: TrackingStep) -> torch.Tensor:
        seen.append(step)
        return step.handles + torch.tensor([1.0, 0.0])

    session = DragSession(G, start_ws(G), [[12, 14], [3, 20]], [[18, 14], [9, 20]], config=CFG, tracker=one_px_right)
    for _ in range(4):
        session.step()
    assert [s.handles for s in session.history] == [[(12.0, 14.0), (3.0, 20.0)], [(13.0, 14.0), (4.0, 20.0)],
                                                    [(14.0, 14.0), (5.0, 20.0)], [(15.0, 14.0), (6.0, 20.0)]]
    step = seen[0]
    assert len(seen) == 3 and step.size == (32, 32) and step.start_handles.tolist() == [[12, 14], [3, 20]]
    assert step.reference_features.shape == (2, step.features.shape[1])
    assert step.image().shape == (1, 3, 32, 32) and torch.equal(step.start_image(), session.render(session.ws0))
    wrong = DragSession(G, start_ws(G), [[12, 14]], [[18, 14]], config=CFG, tracker=lambda step: [[1.0, 2.0, 3.0]])
    wrong.step()
    with pytest.raises(RuntimeError, match="wrong shape"):
        wrong.step()
