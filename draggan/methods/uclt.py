"""UserControllableLT as a drag method: the drag's latent edit predicted in one pass by a latent transformer.

Endo, "User-Controllable Latent Transformer for StyleGAN Image Layout Editing", Pacific Graphics 2022
(Computer Graphics Forum 41(7)); the baseline DragGAN's Table 1 reports (11.64 / 10.41 / 10.15 px for 1, 5
and 68 points against 12.93 / 11.66 / 16.02 px without the edit, 0.03 s per edit). The network and its weights:
`draggan.methods.latent_transformer`; its training: `draggan.methods.uclt_training` (`scripts/train_uclt.py`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from draggan.methods.base import DragMethod, StepOutput
from draggan.methods.latent_transformer import (
    cached_transformer,
    default_weights,
    drag_inputs,
)
from draggan.methods.registry import register_method


@dataclass
class UCLTOptions:
    """The latent transformer method's settings (`drag.method_options`)."""

    weights: str | None = None  # safetensors file; None = draggan/models/uclt-<generator name>.safetensors


@register_method("uclt")
class LatentTransformerMethod(DragMethod):
    """One forward pass of the latent transformer: the session's first (and only) step sets the latent to its
    prediction. It localises no handle: the handles stay where they started and `done` means the pass ran."""

    Options = UCLTOptions
    path_options = ("weights",)
    tracks_handles = False

    def __init__(self, edit, options=None, tracker=None):
        super().__init__(edit, options, tracker)
        name = getattr(edit.G, "model_name", None)
        path = self.options.weights or (default_weights(name) if name else None)
        if path is None:
            raise ValueError("the latent transformer needs weights for this generator: "
                             "give drag.method_options.weights=<file> (see scripts/train_uclt.py)")
        self.model, meta = cached_transformer(str(path), str(edit.device))
        if name and meta.get("generator") not in (None, name):
            raise ValueError(f"{path} was trained for generator {meta.get('generator')!r}, not {name!r}")
        self.block = int(meta.get("feature_block", edit.config.feature_block))
        if self.model.rows > edit.free.shape[1] or edit.config.latent_space != "w+":
            raise ValueError(f"the latent transformer edits {self.model.rows} W+ rows; it needs latent_space='w+' "
                             f"and optimize_ws >= {self.model.rows}")

    def step(self, first: bool) -> StepOutput:
        edit = self.edit
        with torch.no_grad():
            feat = edit.G.synthesis.features(edit.ws0, up_to=self.block, noise_mode=edit.config.noise_mode)[-1]
            f, p, m = drag_inputs(feat, edit.size, edit.handles_rc, edit.targets_rc)
            valid = torch.ones(1, len(f), dtype=torch.bool, device=edit.device)
            ws = self.model(edit.ws0, f[None], p[None], m[None], valid)
            edit.free.copy_(ws[:, :edit.free.shape[1]])
        return StepOutput(handles_rc=edit.handles_rc.clone(), done=torch.ones((), dtype=torch.bool, device=edit.device))
