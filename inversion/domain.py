"""Is a photo inside the generator's domain? Judged after the projection, by how well it is reconstructed.

A generator reproduces its own kind of image closely and anything else poorly: the projection's PSNR (before
pivotal tuning, which can fit almost anything) of the model's own samples sits in a narrow band, and that of a
photo from elsewhere (a person's photo on a cartoon-face model, a landscape) far below it. The threshold of a
registered model is measured (`measure_domain`, `scripts/measure_domain.py`): the model's own samples and photos
of its domain against photos from outside, projected with the same settings, and written into the registry
(`ModelInfo.domain_psnr`, per projection loss) with the measurement in `docs/results/`. Below it, the inversion
warns loudly (the command line, the result's metadata, the editor): dragging such a projection edits an image
that is not the photo.

LPIPS would be the better measure where its weights exist; PSNR needs none, so every machine can check.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from inversion.metrics import psnr

# The threshold is the midpoint of the gap between the lowest in-domain and the highest out-of-domain PSNR
# measured, and never above the lowest in-domain value minus this margin (dB): a photo of the domain that
# reconstructs a little worse than any measured one is not flagged.
IN_DOMAIN_MARGIN_DB = 2.0


def domain_threshold(model_name: str | None, loss: str) -> float | None:
    """The measured projection-PSNR threshold of a registered model for a projection loss (None: not measured)."""
    from draggan.registry import MODELS

    info = MODELS.get(str(model_name)) if model_name is not None else None
    return None if info is None else info.domain_psnr.get(loss)


def check_domain(model_name: str | None, loss: str, projection_psnr: float, *, num_steps: int | None = None
                 ) -> dict[str, Any]:
    """The verdict for a photo whose projection reached `projection_psnr` dB: `outside` True / False, or None with
    the reason when no threshold was measured for this model and loss; `warning` is the line to show."""
    from draggan.registry import MODELS

    threshold = domain_threshold(model_name, loss)
    verdict: dict[str, Any] = dict(projection_psnr=projection_psnr, threshold_psnr=threshold, loss=loss)
    if threshold is None:
        verdict.update(outside=None, warning=None,
                       note=f"no domain threshold measured for {model_name} with loss={loss} "
                            "(scripts/measure_domain.py measures one)")
        return verdict
    measured_steps = MODELS[str(model_name)].domain_steps
    if num_steps is not None and measured_steps and num_steps < measured_steps:  # a shorter projection fits worse
        verdict.update(outside=None, warning=None,
                       note=f"not judged: the projection ran {num_steps} steps, the threshold was measured with "
                            f"{measured_steps}")
        return verdict
    verdict.update(outside=projection_psnr < threshold, warning=None, note=None)
    if verdict["outside"]:
        verdict["warning"] = (f"WARNING: this photo looks OUTSIDE the domain of {model_name}: its projection reaches "
                              f"{projection_psnr:.1f} dB PSNR, below {threshold:.1f} dB (photos of the domain reach "
                              "more). Drags will edit the generator's image, not your photo.")
    return verdict


def projection_psnr(G, target: torch.Tensor, settings) -> float:
    """PSNR of `target` [1, 3, H, W] against its projection into `G` with `settings` (an InversionSettings)."""
    from inversion.projector import project

    s = settings
    res = project(G, target, space=s.space, num_steps=s.num_steps, lr=s.lr, loss=s.loss,
                  noise_regularize=s.noise_regularize, initial_noise_factor=s.initial_noise_factor,
                  optimize_noise=s.optimize_noise, w_avg_samples=s.w_avg_samples, progress=False)
    return psnr(res.image, target)


def outside_photos(height: int, width: int, *, seed: int = 0) -> dict[str, torch.Tensor]:
    """Photos from outside a generator's domain, each [1, 3, H, W] in [-1, 1]: matplotlib's sample photos (a
    portrait, a product photo), skimage's astronaut when skimage is installed, and two synthetic photo-like
    images (1/f noise, whose spectrum is that of natural images, and a landscape of sky, hills and sun)."""
    from inversion.images import load_image

    photos: dict[str, torch.Tensor] = {}
    try:
        import matplotlib

        data = Path(matplotlib.get_data_path()) / "sample_data"
        for name in ("grace_hopper.jpg", "Minduka_Present_Blue_Pack.png"):
            if (data / name).is_file():
                photos[Path(name).stem] = load_image(data / name, height, width)
    except ImportError:
        pass
    try:
        from skimage import data as skdata
        from PIL import Image

        img = Image.fromarray(skdata.astronaut()).resize((width, height), Image.LANCZOS)
        photos["astronaut"] = torch.from_numpy(np.asarray(img)).permute(2, 0, 1)[None].float() / 127.5 - 1
    except ImportError:
        pass
    rng = np.random.default_rng(seed)
    fy, fx = np.fft.fftfreq(height)[:, None], np.fft.fftfreq(width)[None, :]
    amplitude = 1 / np.maximum(np.hypot(fy, fx), 1 / max(height, width))
    pink = np.stack([np.fft.ifft2(amplitude * np.exp(2j * np.pi * rng.random((height, width)))).real
                     for _ in range(3)])
    pink = (pink - pink.mean()) / (3 * pink.std())
    photos["pink_noise"] = torch.from_numpy(pink).float().clamp(-1, 1)[None]
    y, x = np.mgrid[0:height, 0:width] / np.array([height, width])[:, None, None]
    sky = np.stack([0.2 + 0.3 * y, 0.4 + 0.3 * y, 0.9 - 0.2 * y])
    ground = np.stack([0.2 + 0.1 * x, 0.5 - 0.1 * y, 0.15 + 0 * x])
    horizon = 0.55 + 0.08 * np.sin(2 * np.pi * (1.5 * x + 0.2))
    scene = np.where(y > horizon, ground, sky)
    sun = np.hypot(x - 0.75, y - 0.25) < 0.08
    scene[:, sun] = np.array([1.0, 0.9, 0.5])[:, None]
    photos["landscape"] = torch.from_numpy(scene * 2 - 1).float().clamp(-1, 1)[None]
    return photos


def measure_domain(G, settings, *, samples: list[torch.Tensor], inside: dict[str, torch.Tensor],
                   outside: dict[str, torch.Tensor], progress: bool = True) -> dict[str, Any]:
    """Projection PSNR of the model's own `samples`, of photos of its domain (`inside`) and of photos from
    outside it; the threshold that separates them (see IN_DOMAIN_MARGIN_DB) and whether it does."""
    from tqdm import tqdm

    jobs = [("sample", f"sample {i}", img) for i, img in enumerate(samples)] + \
        [("inside", k, v) for k, v in inside.items()] + [("outside", k, v) for k, v in outside.items()]
    rows, t0 = [], time.perf_counter()
    device = next(G.parameters()).device
    for kind, name, img in tqdm(jobs, desc="domain", disable=not progress, dynamic_ncols=True):
        rows.append(dict(kind=kind, name=name, psnr=projection_psnr(G, img.to(device), settings)))
    return dict(rows=rows, **domain_threshold_from(rows), settings=dataclasses.asdict(settings),
                seconds=time.perf_counter() - t0)


def domain_threshold_from(rows: list[dict]) -> dict[str, Any]:
    """The threshold of measured rows (kind 'sample' or 'inside': of the domain; 'outside': not), and what it
    misses: the midpoint of the gap between the two groups, at most IN_DOMAIN_MARGIN_DB below the lowest in-domain
    PSNR; where the groups overlap, the outside images above it are listed as `missed`."""
    ins = [r["psnr"] for r in rows if r["kind"] != "outside"]
    outs = [r["psnr"] for r in rows if r["kind"] == "outside"]
    low_in, high_out = min(ins), max(outs) if outs else float("-inf")
    threshold = round(min((low_in + high_out) / 2, low_in - IN_DOMAIN_MARGIN_DB), 1)
    return dict(threshold_psnr=threshold, lowest_inside=low_in, highest_outside=high_out,
                separates=high_out < threshold <= low_in,
                missed=[r["name"] for r in rows if r["kind"] == "outside" and r["psnr"] >= threshold],
                flagged=[r["name"] for r in rows if r["kind"] == "outside" and r["psnr"] < threshold])
