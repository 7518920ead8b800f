"""eval/locality.py: the allowed region around the drag paths, the change outside it, and its place in the
Table 1 and Table 2 protocols."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from draggan.settings import DragConfig
from eval.flow import make_flow
from eval.landmarks import landmark_manipulation
from eval.locality import default_margin, edit_locality, path_region
from eval.paired import paired_reconstruction


def test_the_allowed_region_is_a_capsule_around_each_path_plus_the_mask():
    region = path_region((20, 30), [(5, 10)], [(15, 10)], margin_px=2)
    assert region[10, 5] and region[10, 15] and region[10, 10]  # the segment
    assert region[12, 10] and not region[13, 10]  # 2 px beside it, not 3
    assert region[10, 17] and not region[10, 18]  # 2 px past the target
    assert region[11, 16] and not region[12, 17]  # the round end: sqrt(2) in, sqrt(8) out
    disc = path_region((20, 30), [(5, 5)], [(5, 5)], margin_px=1.5)  # a handle at its target: a disc
    assert disc.sum() == 9 and disc[5, 5]
    mask = np.zeros((20, 30), bool)
    mask[0, 0] = True
    assert path_region((20, 30), [(5, 5)], [(5, 5)], 1.5, mask=mask)[0, 0]
    with pytest.raises(ValueError, match="as many targets"):
        path_region((20, 30), [(5, 5), (6, 6)], [(5, 5)], 1)
    with pytest.raises(ValueError, match="margin_px"):
        path_region((20, 30), [(5, 5)], [(5, 5)], -1)
    with pytest.raises(ValueError, match="shape"):
        path_region((20, 30), [(5, 5)], [(5, 5)], 1, mask=np.ones((30, 20), bool))


def test_region_size_against_a_direct_count():
    region = path_region((20, 30), [(5, 10)], [(15, 10)], margin_px=2)
    yy, xx = np.mgrid[0:20, 0:30]
    along = np.clip(xx, 5, 15)
    direct = (xx - along) ** 2 + (yy - 10) ** 2 <= 4
    np.testing.assert_array_equal(region, direct)


def test_change_outside_counts_only_the_pixels_outside():
    before = torch.zeros(1, 3, 8, 8)
    after = before.clone()
    allowed = np.zeros((8, 8), bool)
    allowed[:, :4] = True
    after[..., :4] = 1.0  # the allowed half changes by 0.5 in [0, 1] units
    loc = edit_locality(before, after, allowed)
    assert loc.change_outside == 0 and loc.change_inside == pytest.approx(0.5) and loc.outside_share == 0.5
    after[0, 0, 0, 7] = -1.0  # one pixel outside, one channel, by 0.5: 0.5 / 3 / 32 on average outside
    loc = edit_locality(before, after, allowed)
    assert loc.change_outside == pytest.approx(0.5 / 3 / 32)
    everywhere = edit_locality(before, after, np.ones((8, 8), bool))
    assert np.isnan(everywhere.change_outside) and everywhere.outside_share == 0


def test_lpips_sees_only_the_change_outside():
    def fake_lpips(a, b):  # any distance of images: here the summed absolute difference
        return (a - b).abs().sum()[None, None, None, None]

    before = torch.zeros(1, 3, 8, 8)
    after = before.clone()
    allowed = np.zeros((8, 8), bool)
    allowed[:4] = True
    after[:, :, :4] = 0.7  # inside: reset before LPIPS
    assert edit_locality(before, after, allowed, lpips=fake_lpips).lpips_outside == 0
    after[:, 1, 6, 6] = -0.25
    assert edit_locality(before, after, allowed, lpips=fake_lpips).lpips_outside == pytest.approx(0.25)
    assert edit_locality(before, after, allowed).lpips_outside is None


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="before and after"):
        edit_locality(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 9), np.ones((8, 8), bool))
    with pytest.raises(ValueError, match="allowed"):
        edit_locality(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8), np.ones((8, 9), bool))


def test_landmark_protocol_reports_the_change_away_from_the_paths(toy, detector):
    cfg = dataclasses.replace(DragConfig.for_generator("toy-faces-64"), method="draggan", max_steps=8)
    r = landmark_manipulation(toy, detector, cfg, num_points=1, num_pairs=2, seed=3, keep_images=True, progress=False)
    assert r.locality_margin_px == default_margin(64) == 8 and r.lpips_outside is None
    assert all(p["change_inside"] > p["change_outside"] > 0 for p in r.pairs)
    assert r.change_outside == pytest.approx(np.mean([p["change_outside"] for p in r.pairs]))
    # With no margin, the region is the paths' own pixels: the change outside is about the whole image's.
    thin = landmark_manipulation(toy, detector, cfg, num_points=1, num_pairs=2, seed=3, locality_margin=0,
                                 keep_images=True, progress=False)
    whole = ((thin.images_after - thin.images_before).abs() / 2).mean(dim=(1, 2, 3))
    np.testing.assert_allclose([p["change_outside"] for p in thin.pairs], whole.numpy(), rtol=0.02)
    wide = landmark_manipulation(toy, detector, cfg, num_points=1, num_pairs=1, seed=3, locality_margin=200,
                                 progress=False)
    assert np.isnan(wide.change_outside)  # nothing is outside a margin wider than the image


def test_paired_protocol_reports_the_locality(toy):
    cfg = dataclasses.replace(DragConfig.for_generator("toy-faces-64"), method="draggan", max_steps=4)
    r = paired_reconstruction(toy, cfg, make_flow("dis"), num_pairs=1, num_points=4, seed=1, progress=False,
                              locality_margin=4)
    assert r.locality_margin_px == 4 and r.lpips_outside is None
    assert r.change_outside == r.pairs[0]["change_outside"] > 0
    assert r.pairs[0]["change_inside"] > 0 and r.target_change_outside == r.pairs[0]["target_change_outside"] > 0
