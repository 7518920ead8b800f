"""eval/report.py: how runs are labelled in the tables."""

from __future__ import annotations

import json

from eval.report import run_labels


def _run(root, name: str, results: dict, overrides: list[str]):
    folder = root / name
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    (folder / "results.json").write_text(json.dumps(results))
    return folder, results


def test_a_run_is_labelled_by_its_method_or_draggans_tracker(tmp_path):
    runs = [_run(tmp_path, "0", {"tracker": "draggan_l1", "method": "draggan"}, ["drag_method=draggan", "drag.r1=2"]),
            _run(tmp_path, "1", {"tracker": "draggan_l1", "method": "freedrag"}, ["drag_method=freedrag", "drag.r1=2"]),
            _run(tmp_path, "2", {"tracker": "dis", "method": "draggan"}, ["tracker=dis", "drag.r1=3"]),
            _run(tmp_path, "3", {"tracker": "draggan_l1"}, [])]  # results of before drag methods: DragGAN's
    assert run_labels(runs) == ["draggan_l1 (drag.r1=2)", "freedrag (drag.r1=2)", "dis (drag.r1=3)", "draggan_l1"]
