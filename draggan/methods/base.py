"""The contract of a drag method: what a method declares and computes, and what the session does for it.

A drag method holds its own math and state; the edit's timeline (`draggan.session.DragSession`: the latent and
its optimiser, the history, snapshots and rollback, the stop and stall rules, save and resume, the CUDA graph) is
the same for every method. A method is one class, in one file, registered by name:

    @register_method("mine")
    class Mine(DragMethod):
        Options = MineOptions            # a dataclass: the one place its settings' defaults are written
        state_names = ("template",)      # its per-step state (device tensors): snapshotted, rolled back, saved
        def step(self, first): ...       # -> StepOutput(handles_rc=..., done=..., loss=..., features=...)

`step` is called once per drag step with the session as `self.edit`, whose attributes it reads:
`features(ws=None)` (the feature map of `config.feature_block` at the current latent, with gradients),
`handles_rc` / `targets_rc` ([N, 2] (row, col) on the device; the handles as the last step left them),
`handles0_rc` (where they were placed), `size` (H, W), `r1` / `r2` / `stop_px` (pixels), `pixel_grid`,
`config` (the adapted `DragConfig`), `device`, `graphed` (the steps replay as a captured graph),
`mask_loss(feat)` (the session's mask term, 0-d, or None without a mask), `finished` / `given_up` ([N] bool: the
per-handle stop rule `handle_stop='each'`), `ws0` and `free` (the optimised latent rows, a Parameter).

The session back-propagates `StepOutput.loss` into `free` and takes the optimiser's step unless `done`; it reads the
step's outputs back to the host once. A method whose step is capture-safe (`capture_safe = True`: after the first
step, the same operations every step, state only in device tensors updated in place, no reads back to the host)
runs on CUDA as one replayed graph (`draggan.step_graph`); the CPU tests check the discipline on the meta device.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from draggan.presets import SHARED_PRESETS


@dataclass
class StepOutput:
    """What one step of a method computed, as tensors on the generator's device (read back once by the session)."""

    handles_rc: torch.Tensor  # [N, 2] (row, col): where the handles are after this step's localisation
    done: torch.Tensor  # 0-d bool: the method's stop rule holds (the session then makes no update)
    loss: torch.Tensor | None = None  # 0-d: back-propagated into the latent (None: the method sets the latent itself)
    features: torch.Tensor | None = None  # the feature map of the step (the divergence check reads its RMS)
    extras: dict[str, torch.Tensor] = field(default_factory=dict)  # named values reported with the step ([N] or 0-d)


class DragMethod:
    """Base class of the drag methods (see the module docstring for the contract)."""

    name: ClassVar[str] = ""  # the registered name (set by `register_method`)
    Options: ClassVar[type | None] = None  # the method's settings beyond DragConfig, a dataclass (None: none)
    presets: ClassVar[Mapping[str, Mapping[str, Any]]] = SHARED_PRESETS  # DragConfig values of its named presets
    state_names: ClassVar[tuple[str, ...]] = ()  # attributes that are its per-step state (tensors or numbers)
    path_options: ClassVar[tuple[str, ...]] = ()  # options naming a file of this machine: refused from an upload
    tracks_handles: ClassVar[bool] = True  # its handles are positions found in the image (the stall rule reads them)
    accepts_tracker: ClassVar[bool] = False  # an in-loop `PointTracker` may replace its localisation
    capture_safe: bool = False  # its step may be captured as a CUDA graph (see the module docstring)

    def __init__(self, edit, options: Any = None, tracker=None):
        if tracker is not None and not self.accepts_tracker:
            raise ValueError(f"drag method {self.name!r} localises its handles itself; an in-loop tracker applies "
                             "only to methods with DragGAN's point tracking")
        self.edit = edit
        self.options = options
        self.tracker = tracker
        self.reset()

    def reset(self) -> None:
        """The state before the first step (each of `state_names` None, unless a method says otherwise)."""
        for name in self.state_names:
            setattr(self, name, None)

    def step(self, first: bool) -> StepOutput:
        """One step (the first one when `first`: take what the method keeps of the first image)."""
        raise NotImplementedError

    def state(self) -> dict[str, Any]:
        """The per-step state after a step, copied (an empty dict before the first step)."""
        values = {name: getattr(self, name) for name in self.state_names}
        if any(v is None for v in values.values()):
            return {}
        return {k: v.detach().clone() if torch.is_tensor(v) else v for k, v in values.items()}

    def load_state(self, state: Mapping[str, Any] | None) -> None:
        """Return to a state of `state()` (None: before the first step). Tensors are copied into the existing ones
        where the shapes agree, so that a captured step keeps reading them; numbers become 0-d device tensors."""
        if state is None:
            self.reset()
            return
        missing = [n for n in self.state_names if n not in state]
        if missing:
            raise ValueError(f"the saved state of drag method {self.name!r} lacks {', '.join(missing)}")
        for name in self.state_names:
            value = state[name]
            value = (value if torch.is_tensor(value) else torch.as_tensor(value)).to(self.edit.device)
            current = getattr(self, name, None)
            if torch.is_tensor(current) and current.shape == value.shape and current.dtype == value.dtype:
                current.copy_(value)
            else:
                setattr(self, name, value.clone())

    def resume(self, first_features: torch.Tensor) -> None:
        """A session continues from a saved step: take again what is not saved but follows from the first image
        (its features at the session's start, `first_features`, detached)."""


def method_options(method_cls: type[DragMethod], given: Mapping[str, Any] | None) -> Any:
    """`given` (a config's `method_options`) as an instance of the method's `Options`, checked (an unknown name and
    a bad value are one-line ValueErrors); None for a method without options (which then takes none)."""
    given = dict(given or {})
    options_class = method_cls.Options
    if options_class is None:
        if given:
            raise ValueError(f"drag method {method_cls.name!r} has no options (given: {', '.join(sorted(given))})")
        return None
    names = {f.name for f in dataclasses.fields(options_class)}
    unknown = sorted(set(given) - names)
    if unknown:
        raise ValueError(f"drag method {method_cls.name!r} has no option {', '.join(unknown)} "
                         f"(its options: {', '.join(sorted(names))})")
    options = options_class(**given)
    check = getattr(options, "validate", None)
    if check is not None:
        check()
    return options
