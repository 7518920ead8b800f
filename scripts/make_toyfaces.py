"""Write a toy-faces dataset: `python scripts/make_toyfaces.py out=data/toyfaces num_images=10000`."""

from draggan.apps.command_line import command
from draggan.apps.configs import register_configs
from draggan.apps.toyfaces.dataset import write_dataset
from draggan.threads import use_threads

register_configs()


@command("make_toyfaces")
def main(cfg) -> None:
    use_threads(cfg.threads)  # batches of renders: large enough to share the cores
    ds = write_dataset(cfg.out, cfg.num_images, resolution=cfg.resolution, seed=cfg.seed)
    print(f"wrote {len(ds.images)} images and their annotations to {ds.root}")


if __name__ == "__main__":
    main()
