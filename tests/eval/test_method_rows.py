"""Each drag method on the paper's landmark protocol (Table 1) with the toy model: the row is produced and the
re-detected landmarks end nearer their targets than without the edit (a few pairs: the full tables are run by
scripts/evaluate.py -m drag_method=...)."""

from __future__ import annotations

import dataclasses

import pytest

from draggan.settings import DragConfig
from eval.landmarks import landmark_manipulation


@pytest.mark.parametrize("method", ["freedrag", "stabledrag"])
def test_an_optimising_method_moves_the_landmarks_towards_their_targets(toy, detector, method):
    config = dataclasses.replace(DragConfig.for_generator(toy), method=method, max_steps=80)
    r = landmark_manipulation(toy, detector, config, num_points=1, num_pairs=2, seed=0, progress=False)
    assert r.tracker == method and r.num_pairs == 2 and len(r.pairs) == 2
    assert r.md_no_edit > 2.0  # the pairs need a drag at all
    assert r.ratio < 0.6, f"{method}: MD {r.md_edit:.2f} px after the edit against {r.md_no_edit:.2f} px without it"
    assert 1 <= r.steps_mean <= 80


def test_the_shipped_latent_transformer_gives_a_table1_row_in_one_pass(toy, detector):
    """UserControllableLT (draggan/models/uclt-toy-faces-64.safetensors): one forward pass per edit, and its edits
    bring the landmarks nearer (10 pairs, seed 0, when trained: ratios 0.55 / 0.30 / 0.30 for 1 / 5 / 17 points)."""
    config = dataclasses.replace(DragConfig.for_generator(toy), method="uclt")
    r = landmark_manipulation(toy, detector, config, num_points=5, num_pairs=3, seed=0, progress=False)
    assert r.tracker == "uclt" and r.steps_mean == 1 and len(r.pairs) == 3
    assert r.ratio < 0.7, f"uclt: MD {r.md_edit:.2f} px after the edit against {r.md_no_edit:.2f} px without it"
