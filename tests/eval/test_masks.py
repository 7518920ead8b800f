"""The masked-drag and mouth measures of issue 17 (eval/masks.py, eval/mouth.py) on the shipped toy model."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from draggan.settings import DragConfig
from eval.masks import disc_mask, masked_drag
from eval.mouth import mouth_centres, red_pixels


def test_disc_mask_covers_both_centres():
    m = disc_mask((20, 30), [(5.0, 5.0), (20.0, 10.0)], 2.0)
    assert m[5, 5] and m[10, 20] and m[5, 7] and not m[5, 8] and not m[0, 0] and m.sum() == 2 * 13


def test_red_pixels_find_a_red_mouth_in_the_window_only():
    img = -torch.ones(1, 3, 64, 64)  # black
    img[0, 0, 40:42, 28:36] = 0.44  # lips (0.72, 0.22, 0.24) in [-1, 1]
    img[0, 1:, 40:42, 28:36] = -0.56
    img[0, 0, 2:6, 2:6] = 1.0  # a red patch in the hair: outside the window
    assert red_pixels(img).sum() == 16
    assert mouth_centres(img) == [(31.5, 40.5)]
    assert mouth_centres(-torch.ones(1, 3, 64, 64)) == [None]


def test_the_recommended_mask_term_lets_the_handle_move_and_holds_the_rest(toy, detector):
    """One face, the left eye dragged 3 px up with a disc mask around it, 60 steps: the paper's L1 term at its
    weight 20 holds the eye still (the bug of issue 17); the recommended squared term lets it move, and the
    landmarks outside the disc move much less than without a mask."""
    G = toy  # (the fixtures of tests/eval/conftest.py)
    recommended = dataclasses.replace(DragConfig.for_generator(G), method="draggan")  # DragGAN's step
    paper_mask = dataclasses.replace(recommended, mask_loss="l1")
    new = masked_drag(G, detector, recommended, seeds=[0], max_steps=60)
    old = masked_drag(G, detector, paper_mask, seeds=[0], max_steps=60, unmasked=new.faces)
    assert old.dist_masked > 2.5  # held: less than 0.5 px of the 3 px
    assert new.dist_masked < old.dist_masked - 0.5
    assert new.outside_masked < 0.5 * new.outside_unmasked
    assert new.change_outside_masked < 0.5 * new.change_outside_unmasked  # the pixels outside the disc, too
    assert old.change_outside_unmasked == new.change_outside_unmasked  # (the unmasked drags reused)
    assert np.isfinite(new.reach_ratio) and new.num_faces == 1


def test_landmarks_that_move_along_join_the_movable_region(toy, detector):
    """`also`: on the toy faces both eyes share one height, so an eye drag may free the other eye too; its discs
    (at the start and moved by the offset) are movable and its landmarks no longer count as outside."""
    G = toy  # (the fixtures of tests/eval/conftest.py)
    cfg = DragConfig.for_generator(G)
    one = masked_drag(G, detector, cfg, seeds=[0], max_steps=1)
    both = masked_drag(G, detector, cfg, seeds=[0], max_steps=1, also=["right_eye_center"])
    assert "right_eye_center" in one.faces[0]["outside"] and "right_eye_center" not in both.faces[0]["outside"]
    assert "nose_tip" in both.faces[0]["outside"] and both.also == ("right_eye_center",)
    with pytest.raises(ValueError, match="unknown landmark"):
        masked_drag(G, detector, cfg, seeds=[0], max_steps=1, also=["third_eye"])
    with pytest.raises(ValueError, match="cannot be reused"):  # the unmasked drags measured another outside
        masked_drag(G, detector, cfg, seeds=[0], max_steps=1, also=["right_eye_center"], unmasked=one.faces)


def test_drag_checks_script_config_runs_the_mouth_measure():
    """`scripts/drag_checks.py check=mouth`: one face, 5 steps; the figures are those of `mouth_drag`."""
    from hydra import compose, initialize_config_dir

    from eval.configs import register_configs
    from eval.drag_checks import run_drag_checks
    from tests.test_configs import CONF

    register_configs()
    with initialize_config_dir(config_dir=str(CONF), version_base=None):
        cfg = compose(config_name="drag_checks", overrides=["check=mouth", "num_faces=1", "steps=5"])
        bad = compose(config_name="drag_checks", overrides=["check=nose"])
    out = run_drag_checks(cfg)
    assert out["num_faces"] == 1 and out["faces"][0]["steps"] <= 5 and out["drag"]["radius_unit"] == "cells"
    assert (out["drag_adapted"]["feature_block"], out["drag_adapted"]["stop_distance"]) == (3, 0.71)  # as the drags ran
    assert 0 <= out["left"] < 2 and out["offset"] == (0.0, 6.0)
    with pytest.raises(ValueError, match="check must be one of"):
        run_drag_checks(bad)
