"""Drag methods behind one interface: each is a `DragSession` (same points, latent, history, `run`).

`DragConfig.method` chooses one; `make_session` builds it, so the command line, the evaluation
protocols and Python users select a method by name (`drag_method=freedrag` in Hydra):

- `draggan`: Pan et al. 2023, the project's `DragSession` (motion supervision + nearest-neighbour tracking).
- `freedrag`: Ling et al., CVPR 2024 (`draggan.methods.freedrag`): adaptive template features and a line
  search with backtracking along the handle->target line, no point tracking.
- `stabledrag`: Cui et al., ECCV 2024 (`draggan.methods.stabledrag`): a discriminative tracker learned on the
  handle's features, and motion supervision that falls back to the first features when its confidence is low.
- `uclt`: Endo 2022 (`draggan.methods.uclt`): a latent transformer that predicts the edit in one pass.

The settings of a method beyond `DragConfig` are `DragConfig.method_options`, checked against the method's
options dataclass (an unknown name is an error, not ignored).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from draggan.drag import METHODS, DragConfig, DragSession
from draggan.networks import Generator


def session_class(method: str) -> type[DragSession]:
    """The `DragSession` class of a drag method (see `METHODS`)."""
    if method == "draggan":
        return DragSession
    if method == "freedrag":
        from draggan.methods.freedrag import FreeDragSession

        return FreeDragSession
    if method == "stabledrag":
        from draggan.methods.stabledrag import StableDragSession

        return StableDragSession
    if method == "uclt":
        from draggan.methods.uclt import LatentTransformerSession

        return LatentTransformerSession
    raise ValueError(f"unknown drag method {method!r} (expected one of {', '.join(METHODS)})")


def make_session(G: Generator, ws: torch.Tensor, handles: Sequence[Sequence[float]],
                 targets: Sequence[Sequence[float]], mask: np.ndarray | torch.Tensor | None = None,
                 config: DragConfig | None = None, tracker=None) -> DragSession:
    """The session of `config.method` (default: DragGAN) for this edit; the arguments are `DragSession`'s.

    `tracker` (an in-loop tracker of the evaluation) replaces DragGAN's point tracking; the other methods
    have their own localisation, so one given to them is an error rather than silently unused."""
    return DragSession(G, ws, handles, targets, mask=mask, config=config, tracker=tracker)  # dispatches on the method


def method_options(options_class: type, config: DragConfig) -> Any:
    """`config.method_options` as an instance of the method's options dataclass, or a one-line ValueError."""
    names = {f.name for f in dataclasses.fields(options_class)}
    given = dict(config.method_options or {})
    unknown = sorted(set(given) - names)
    if unknown:
        raise ValueError(f"drag method {config.method!r} has no option {', '.join(unknown)} "
                         f"(its options: {', '.join(sorted(names))})")
    options = options_class(**given)
    check = getattr(options, "validate", None)
    if check is not None:
        check()
    return options


class MethodSession(DragSession):
    """What the methods other than DragGAN share: their step is their own `_forward_backward` (never a CUDA
    graph: their state changes between steps), and their extra per-step state is kept in each snapshot, so
    that `rollback` works within a process, and saved with the session (`save_session`), so that a loaded
    session continues. One saved without it (before the methods kept it) can be rolled back and its latent
    used for a new segment, but not continued (an error says so)."""

    _packet_extra = 0  # values the method appends to the step's packet (read in the same host transfer)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.extra: list[float] = []  # this step's extra values of the packet
        self._continuable = True

    def _use_graph(self) -> bool:
        return False

    def _to_host(self, packet: torch.Tensor) -> list[float]:
        values = super()._to_host(packet)
        self.extra = values[len(values) - self._packet_extra:] if self._packet_extra else []
        return values

    def _method_state(self) -> dict:  # the method's own state after a step (tensors are cloned)
        return {}

    def _load_method_state(self, state: dict | None) -> None:
        pass

    def step(self):
        if not self._continuable:
            raise RuntimeError(f"this {self.config.method} session was loaded from disk without its method state "
                               "(templates, tracker); start a new segment with new points from its latent")
        return super().step()

    def _snapshot(self) -> dict:
        return {**super()._snapshot(), "method": self._method_state()}

    def _restore(self, index: int) -> None:
        super()._restore(index)
        if index < 0:
            self._load_method_state(None)
            self._continuable = True
        elif self.snapshots[index].get("method"):
            self._load_method_state(self.snapshots[index]["method"])
            self._continuable = True
        else:
            self._continuable = False

    def _first_step_features(self) -> None:
        """Loaded from disk: the first image's features for the mask term; the method's state at each step
        comes from the snapshots."""
        with torch.no_grad():
            feat = self._features(self.ws0)
        self._hold(feat)
        self.feature_scale0 = float(feat.to(torch.float32).square().mean().sqrt())
