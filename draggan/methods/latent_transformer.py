"""The latent transformer of UserControllableLT: the network, its inputs from a drag, and its weights file.

Endo, "User-Controllable Latent Transformer for StyleGAN Image Layout Editing", Pacific Graphics 2022
(Computer Graphics Forum 41(7)). Written here from the paper's description, at the toy domain's size.

A transformer reads two kinds of tokens:
- latent tokens, one per edited W+ row j: Linear(w_j) + a learned position embedding of the row;
- point tokens, one per handle i: Linear([f_i / s, p_i, m_i]) with f_i the generator's feature at the handle
  (block `feature_block`, sampled as DragGAN samples it), s a fixed feature scale, p_i the handle in [-1, 1]
  and m_i = (t_i - p_i) / (H / 8) its motion,
and after `layers` encoder layers each latent token gives Delta w_j = Linear(token_j); the edit is
w_j + Delta w_j on the first `rows` rows (the layout rows, as DragGAN optimises them), the rest unchanged.
The number of points varies (padded tokens are masked out of the attention). The method is
`draggan.methods.uclt`; the training `draggan.methods.uclt_training`.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from draggan.features import resized_features_at
from draggan.files import atomic_write
from draggan.registry import PACKAGE_MODELS


def default_weights(generator_name: str) -> Path:
    """Where the latent transformer of a registered generator lives: draggan/models/uclt-<name>.safetensors."""
    return PACKAGE_MODELS / f"uclt-{generator_name}.safetensors"


class LatentTransformer(torch.nn.Module):
    """Predicts Delta w for the first `rows` W+ rows from the latent and the drag (see the module docstring)."""

    def __init__(self, *, w_dim: int, channels: int, rows: int, width: int = 128, layers: int = 3, heads: int = 4,
                 feat_scale: float = 1.0):
        super().__init__()
        self.hparams = dict(w_dim=w_dim, channels=channels, rows=rows, width=width, layers=layers, heads=heads)
        self.rows = rows
        self.latent_in = torch.nn.Linear(w_dim, width)
        self.row_embed = torch.nn.Parameter(torch.randn(rows, width) * 0.02)
        self.point_in = torch.nn.Sequential(torch.nn.Linear(channels + 4, width), torch.nn.GELU(),
                                            torch.nn.Linear(width, width))
        self.kind_embed = torch.nn.Parameter(torch.randn(2, width) * 0.02)  # latent token, point token
        layer = torch.nn.TransformerEncoderLayer(width, heads, dim_feedforward=2 * width, dropout=0.0,
                                                 batch_first=True, norm_first=True)
        self.encoder = torch.nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = torch.nn.LayerNorm(width)
        self.out = torch.nn.Linear(width, w_dim)
        torch.nn.init.zeros_(self.out.weight)  # starts as "no edit"
        torch.nn.init.zeros_(self.out.bias)
        self.register_buffer("feat_scale", torch.tensor(float(feat_scale)))

    def forward(self, ws: torch.Tensor, feats: torch.Tensor, points: torch.Tensor, motions: torch.Tensor,
                valid: torch.Tensor) -> torch.Tensor:
        """ws [B, num_ws, w_dim]; feats [B, N, C]; points, motions [B, N, 2] (normalised); valid [B, N] bool.
        Returns the edited ws [B, num_ws, w_dim]."""
        B, N = valid.shape
        lat = self.latent_in(ws[:, :self.rows]) + self.row_embed + self.kind_embed[0]
        pts = self.point_in(torch.cat([feats / self.feat_scale, points, motions], -1)) + self.kind_embed[1]
        pad = torch.cat([torch.zeros(B, self.rows, dtype=torch.bool, device=ws.device), ~valid], 1)
        x = self.encoder(torch.cat([lat, pts], 1), src_key_padding_mask=pad)
        delta = self.out(self.norm(x[:, :self.rows]))
        return torch.cat([ws[:, :self.rows] + delta, ws[:, self.rows:]], 1)


def drag_inputs(feat: torch.Tensor, size: tuple[int, int], handles_rc: torch.Tensor, targets_rc: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The point-token inputs of one image: features at the (rounded) handles [N, C], normalised (x, y) handles
    and motions [N, 2]. One function for training and editing, so that both see the same numbers."""
    H, W = size
    rc = handles_rc.round().to(torch.int64)
    f = resized_features_at(feat, size, rc[:, 0].clamp(0, H - 1), rc[:, 1].clamp(0, W - 1)).T
    scale = torch.tensor([W - 1, H - 1], device=feat.device, dtype=torch.float32)
    p = handles_rc.flip(-1).to(torch.float32) / scale * 2 - 1
    m = (targets_rc - handles_rc).flip(-1).to(torch.float32) / (torch.tensor([W, H], device=feat.device) / 8)
    return f, p, m


def save_transformer(model: LatentTransformer, path: str | Path, *, generator: str, feature_block: int,
                     card: dict | None = None) -> Path:
    from safetensors.torch import save_file

    meta = {"hparams": json.dumps(model.hparams), "generator": generator, "feature_block": str(feature_block),
            "training": json.dumps(card or {})}
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    return atomic_write(path, lambda p: save_file(state, str(p), metadata=meta))


def load_transformer(path: str | Path, device: torch.device | str = "cpu") -> tuple[LatentTransformer, dict]:
    """A saved latent transformer and its metadata (generator name, feature block); the file holds tensors only."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no latent transformer weights at {path}: train them with scripts/train_uclt.py "
                                "(or give drag.method_options.weights=<file>)")
    with safe_open(str(path), "pt") as f:
        meta = f.metadata() or {}
    hp = json.loads(meta.get("hparams", "{}"))
    expected = {"w_dim", "channels", "rows", "width", "layers", "heads"}
    if set(hp) != expected or not all(isinstance(v, int) and 0 < v <= 4096 for v in hp.values()):
        raise ValueError(f"{path} is not a latent transformer file (its hyper-parameters are {hp!r})")
    model = LatentTransformer(**hp)
    model.load_state_dict(load_file(str(path)), strict=True)
    return model.to(device).eval().requires_grad_(False), meta


def cached_transformer(path: str, device: str) -> tuple[LatentTransformer, dict]:
    """`load_transformer`, read once per file version and device (a protocol builds a session per pair)."""
    p = Path(path)
    key = (str(p.resolve()), p.stat().st_mtime_ns if p.is_file() else None, device)
    if key not in _LOADED:
        _LOADED.clear()
        _LOADED[key] = load_transformer(p, device)
    return _LOADED[key]


_LOADED: dict[tuple, tuple[LatentTransformer, dict]] = {}
