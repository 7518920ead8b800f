"""The web editor: `python scripts/app.py` serves a page on which to drag points of generated images
and of inverted photos, live (see `draggan.app.editor` for the model, `draggan.app.server` for the API).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import torch
from omegaconf import OmegaConf

from draggan.app.editor import Editor, EditorError, EditorLimits, GeneratorChoice, TabSession
from draggan.app.server import EditorServer
from draggan.configs import GeneratorConfig
from draggan.edit import drag_config_from
from draggan.loading import load_generator, resolve_device

__all__ = ["Editor", "EditorError", "EditorLimits", "EditorServer", "GeneratorChoice", "TabSession",
           "build_editor", "generator_choices", "serve"]


def generator_choices(cfg, conf_dir: str | Path | None) -> list[GeneratorChoice]:
    """The configured generator first, then those named in `cfg.generators` (None = every file of
    `conf_dir/generator/`), each with the drag settings its generator config gives."""
    first = GeneratorChoice(str(cfg.generator.source), str(cfg.generator.source), drag_config_from(cfg))
    choices = [first]
    folder = Path(conf_dir) / "generator" if conf_dir is not None else None
    names = cfg.get("generators")
    if names is None:
        names = sorted(p.stem for p in folder.glob("*.yaml")) if folder is not None and folder.is_dir() else []
    for name in names:
        if name == first.name or any(c.name == name for c in choices):
            continue
        path = folder / f"{name}.yaml" if folder is not None else None
        if path is not None and path.is_file():
            gen = OmegaConf.merge(OmegaConf.structured(GeneratorConfig),
                                  {k: v for k, v in OmegaConf.to_container(OmegaConf.load(path)).items() if k != "defaults"})
        else:  # a registered name or a file without a config of its own: the drag group's settings
            gen = OmegaConf.structured(GeneratorConfig(source=str(name)))
        drag = drag_config_from(OmegaConf.create({"drag": OmegaConf.to_container(cfg.drag), "generator": gen}))
        choices.append(GeneratorChoice(str(name), str(gen.source), drag))
    return choices


def build_editor(cfg, *, invert: Callable | None = None, conf_dir: str | Path | None = None,
                 out_dir: str | Path = "outputs/app") -> Editor:
    """The editor of an `app` config (see conf/app.yaml)."""
    device = resolve_device(None if cfg.device == "auto" else cfg.device)
    limits = EditorLimits(max_upload_bytes=int(cfg.max_upload_mb * 2**20),
                          max_session_bytes=int(cfg.max_session_mb * 2**20), max_sessions=cfg.max_sessions,
                          session_timeout=cfg.session_timeout, max_fps=cfg.max_fps,
                          poll_timeout=min(10.0, cfg.session_timeout / 3))
    return Editor(generator_choices(cfg, conf_dir), load=lambda source: load_generator(source, device=device),
                  invert=invert, out_dir=cfg.out_dir or out_dir, truncation_psi=cfg.truncation_psi,
                  limits=limits, device=device)


def serve(cfg, *, invert: Callable | None = None, conf_dir: str | Path | None = None,
          out_dir: str | Path = "outputs/app") -> None:
    """Serve the editor until interrupted (Ctrl-C)."""
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    editor = build_editor(cfg, invert=invert, conf_dir=conf_dir, out_dir=out_dir)
    editor.generator(editor.choice(None))  # load the default now: a broken setup fails before the page opens
    try:
        server = EditorServer(editor, cfg.host, cfg.port)
    except OSError as e:
        raise SystemExit(f"cannot listen on {cfg.host}:{cfg.port} ({e.strerror}); choose another port= "
                         "(0 picks a free one)") from None
    print(f"DragGAN editor on {server.url}  (saved sessions go to {editor.out_dir}; Ctrl-C stops it)", flush=True)
    if cfg.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: listening on {cfg.host}: anyone who reaches this address can use the editor",
              file=sys.stderr, flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        print("stopped", flush=True)
    finally:
        server.server_close()
        editor.shutdown()
