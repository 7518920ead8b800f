"""Measure a generator's domain threshold (inversion/domain.py): `python scripts/measure_domain.py
[--generator toy-faces-64] [--samples 10] [--renders 6] [--inversion mse] [--out FILE]`.

Projects the model's own samples (truncation 1), renders of the toy domain (toy-faces models) and photos from
outside the domain with the inversion preset's settings, and writes their PSNRs and the threshold as JSON (into
outputs/measure_domain/<time>/ unless --out names the file, e.g. docs/results/domain-toy-faces-64.json).
"""

import argparse
import json
import time
from pathlib import Path

from draggan.apps.commands import one_line_main
from draggan.threads import use_threads


@one_line_main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--generator", default="toy-faces-64")
    parser.add_argument("--samples", type=int, default=10, help="the model's own samples (seeds 0..N-1)")
    parser.add_argument("--renders", type=int, default=None, help="toy-domain renders (default: 6 on toy-faces)")
    parser.add_argument("--inversion", default="mse", help="the inversion preset (conf/inversion/)")
    parser.add_argument("--threads", default="auto")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    from hydra import compose, initialize_config_dir

    from draggan.configs import from_config
    from draggan.latents import latents_from_seeds, synthesize
    from draggan.loading import load_generator
    from draggan.threads import synthesis_macs
    from eval.configs import register_configs
    from inversion.configs import InversionSettings
    from inversion.domain import measure_domain, outside_photos

    register_configs()
    with initialize_config_dir(config_dir=str(Path(__file__).resolve().parents[1] / "conf"), version_base=None):
        settings = from_config(InversionSettings, compose("invert", overrides=[f"inversion={args.inversion}",
                                                                               "image=unused"]).inversion)
    G = load_generator(args.generator, device="cpu")
    use_threads(args.threads, work_macs=synthesis_macs(G))
    samples = list(synthesize(G, latents_from_seeds(G, range(args.samples), 1.0)).clamp(-1, 1).split(1))
    renders = args.renders if args.renders is not None else (6 if "toy-faces" in args.generator else 0)
    inside = {}
    if renders:
        from draggan.apps.toyfaces.renderer import render_seeds

        imgs = render_seeds(range(4_000_000, 4_000_000 + renders), G.img_height)[0]
        inside = {f"render {i}": img[None] for i, img in enumerate(imgs)}
    result = measure_domain(G, settings, samples=samples, inside=inside,
                            outside=outside_photos(G.img_height, G.img_width))
    result.update(generator=args.generator, inversion=args.inversion, truncation_psi=1.0)
    out = Path(args.out) if args.out else Path("outputs/measure_domain") / time.strftime("%Y-%m-%d_%H-%M-%S") / "domain.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    for row in result["rows"]:
        print(f"{row['kind']:<8} {row['name']:<32} {row['psnr']:6.2f} dB")
    print(f"threshold {result['threshold_psnr']} dB (separates: {result['separates']}); wrote {out}")


if __name__ == "__main__":
    main()
