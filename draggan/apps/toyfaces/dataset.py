"""Writing a toy-faces dataset to disk: PNG images, their parameters and landmarks."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from draggan.apps.toyfaces.renderer import LANDMARKS, PARAM_NAMES, landmarks, render, sample_params

ANNOTATIONS = "annotations.npz"


@dataclass
class ToyFacesDataset:
    root: Path
    images: list[Path]  # images/00000000.png, ...
    params: np.ndarray  # [N, len(PARAM_NAMES)]
    landmarks: np.ndarray  # [N, len(LANDMARKS), 2] (x, y) pixels


def write_dataset(out_dir: str | Path, num_images: int, *, resolution: int = 64, seed: int = 0, batch: int = 256,
                  progress: bool = True) -> ToyFacesDataset:
    """Render `num_images` faces (batch i drawn with seed (seed, i)) into `out_dir`.

    Writes `images/*.png`, `annotations.npz` (params, landmarks, their names) and `dataset.json`.
    The annotations are written last, so a folder without them is an interrupted write.
    """
    if num_images < 1:
        raise ValueError(f"num_images must be positive, got {num_images}")
    root = Path(out_dir)
    (root / "images").mkdir(parents=True, exist_ok=True)
    all_params, all_points, files = [], [], []
    with tqdm(total=num_images, desc="toy faces", unit="img", disable=not progress) as bar:
        for i, start in enumerate(range(0, num_images, batch)):
            n = min(batch, num_images - start)
            params = sample_params(n, np.random.default_rng([seed, i]))
            imgs = ((render(params, resolution) * 127.5 + 128).clamp(0, 255).byte().permute(0, 2, 3, 1).numpy())
            for j in range(n):
                f = root / "images" / f"{start + j:08d}.png"
                Image.fromarray(imgs[j]).save(f)
                files.append(f)
            all_params.append(params.numpy())
            all_points.append(landmarks(params, resolution).numpy())
            bar.update(n)
    params, points = np.concatenate(all_params), np.concatenate(all_points)
    (root / "dataset.json").write_text(json.dumps(dict(
        num_images=num_images, resolution=resolution, seed=seed, params=list(PARAM_NAMES), landmarks=list(LANDMARKS),
        convention="landmarks are (x, y) pixels, origin at the centre of the top-left pixel"), indent=2))
    np.savez(root / ANNOTATIONS, params=params, landmarks=points, param_names=np.array(PARAM_NAMES),
             landmark_names=np.array(LANDMARKS))
    return ToyFacesDataset(root, files, params, points)


def read_dataset(root: str | Path) -> ToyFacesDataset:
    root = Path(root)
    if not (root / ANNOTATIONS).is_file():
        raise FileNotFoundError(f"{root / ANNOTATIONS} is missing: not a toy-faces dataset, or its writing was interrupted")
    ann = np.load(root / ANNOTATIONS)
    files = sorted((root / "images").glob("*.png"))
    if len(files) != len(ann["params"]):
        raise ValueError(f"{root}: {len(files)} images but {len(ann['params'])} annotations")
    return ToyFacesDataset(root, files, ann["params"], ann["landmarks"])
