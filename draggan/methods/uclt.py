"""A small User-Controllable Latent Transformer: the drag's latent edit predicted in one pass.

Endo, "User-Controllable Latent Transformer for StyleGAN Image Layout Editing", Pacific Graphics 2022
(Computer Graphics Forum 41(7)); the baseline DragGAN's Table 1 reports (11.64 / 10.41 / 10.15 px for 1, 5
and 68 points against 12.93 / 11.66 / 16.02 px without the edit, 0.03 s per edit). Written here from the
paper's description, at the toy domain's size.

The model. A transformer reads two kinds of tokens:
- latent tokens, one per edited W+ row j: Linear(w_j) + a learned position embedding of the row;
- point tokens, one per handle i: Linear([f_i / s, p_i, m_i]) with f_i the generator's feature at the handle
  (block `feature_block`, sampled as DragGAN samples it), s a fixed feature scale, p_i the handle in [-1, 1]
  and m_i = (t_i - p_i) / (H / 8) its motion,
and after `layers` encoder layers each latent token gives Delta w_j = Linear(token_j); the edit is
w_j + Delta w_j on the first `rows` rows (the layout rows, as DragGAN optimises them), the rest unchanged.
The number of points varies (padded tokens are masked out of the attention).

Training (self-supervised from the generator, as the paper's): a face w1 = mapping(z1) and a second face w2
made by moving w1's first `rows` rows a random fraction towards another latent (the paired protocol's way
to change the layout); point motions between the two images come from the generator's own features: random
cells of image 1 matched to their nearest feature in image 2 (cosine similarity), kept when the match maps
back within one cell (cycle consistency); the loss is || w_hat - w2 ||^2 over the edited rows. Nothing of the
landmark detector is used, so the Table 1 protocol measures it as it measures the optimisation methods.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from draggan.features import resized_features_at
from draggan.files import atomic_write
from draggan.methods import MethodSession, method_options
from draggan.methods.configs import UCLTTrainConfig
from draggan.networks import Generator

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"


def default_weights(generator_name: str) -> Path:
    """Where the latent transformer of a registered generator lives: draggan/models/uclt-<name>.safetensors."""
    return MODELS_DIR / f"uclt-{generator_name}.safetensors"


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


def _cached_transformer(path: str, device: str) -> tuple[LatentTransformer, dict]:
    """`load_transformer`, read once per file version and device (a protocol builds a session per pair)."""
    p = Path(path)
    key = (str(p.resolve()), p.stat().st_mtime_ns if p.is_file() else None, device)
    if key not in _LOADED:
        _LOADED.clear()
        _LOADED[key] = load_transformer(p, device)
    return _LOADED[key]


_LOADED: dict[tuple, tuple[LatentTransformer, dict]] = {}

# ------------------------------------------------------------------------------------------------
# The method


@dataclass
class UCLTOptions:
    """The latent transformer method's settings (`drag.method_options`)."""

    weights: str | None = None  # safetensors file; None = draggan/models/uclt-<generator name>.safetensors


class LatentTransformerSession(MethodSession):
    """One forward pass of the latent transformer: the session's first (and only) step sets the latent to its
    prediction. It localises no handle: `handles` stay where they started and `done` means the pass ran."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.options = method_options(UCLTOptions, self.config)
        name = getattr(self.G, "model_name", None)
        path = self.options.weights or (default_weights(name) if name else None)
        if path is None:
            raise ValueError("the latent transformer needs weights for this generator: "
                             "give drag.method_options.weights=<file> (see scripts/train_uclt.py)")
        self.model, meta = _cached_transformer(str(path), str(self.device))
        if name and meta.get("generator") not in (None, name):
            raise ValueError(f"{path} was trained for generator {meta.get('generator')!r}, not {name!r}")
        block = int(meta.get("feature_block", self.config.feature_block))
        if self.model.rows > self.free.shape[1] or self.config.latent_space != "w+":
            raise ValueError(f"the latent transformer edits {self.model.rows} W+ rows; it needs latent_space='w+' "
                             f"and optimize_ws >= {self.model.rows}")
        self.block = block

    def step(self):
        from draggan.drag import DragState

        if self.done:
            raise RuntimeError("the session is done; roll back to an earlier step to continue")
        with torch.no_grad():
            feat = self.G.synthesis.features(self.ws0, up_to=self.block, noise_mode=self.config.noise_mode)[-1]
            f, p, m = drag_inputs(feat, self.size, self.handles_rc, self.targets_rc)
            valid = torch.ones(1, len(f), dtype=torch.bool, device=self.device)
            ws = self.model(self.ws0, f[None], p[None], m[None], valid)
            self.free.copy_(ws[:, :self.free.shape[1]])
        dist = torch.linalg.norm(self.targets_rc - self.handles_rc, dim=1).tolist()  # the step's one read-back
        self.done = True
        state = DragState(step=len(self.history), handles=self.handles, loss=float("nan"), distances=dist, done=True)
        self.history.append(state)
        self.snapshots.append(self._snapshot())
        return state


# ------------------------------------------------------------------------------------------------
# Training


def _pairs(G: Generator, cfg: UCLTTrainConfig, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """w1 and w2 for a batch: w2's first `rows` rows moved a random fraction towards another face's."""
    z = torch.randn(2 * cfg.batch, G.z_dim, generator=gen)
    w = G.mapping(z, None, truncation_psi=cfg.truncation_psi)
    w1, wo = w[:cfg.batch], w[cfg.batch:]
    lo, hi = cfg.strength
    s = lo + (hi - lo) * torch.rand(cfg.batch, 1, 1, generator=gen)
    w2 = w1.clone()
    w2[:, :cfg.rows] = w1[:, :cfg.rows] + s * (wo[:, :cfg.rows] - w1[:, :cfg.rows])
    return w1, w2


def feature_matches(f1: torch.Tensor, f2: torch.Tensor, cells: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For cells (flat indices [B, P]) of f1 [B, C, h, w]: the cell of f2 with the most similar feature (cosine),
    and whether the match maps back within one cell of where it started (cycle consistency)."""
    B, C, h, w = f1.shape
    a = torch.nn.functional.normalize(f1.flatten(2), dim=1)  # [B, C, hw]
    b = torch.nn.functional.normalize(f2.flatten(2), dim=1)
    q = torch.gather(a, 2, cells[:, None].expand(-1, C, -1))  # [B, C, P]
    match = torch.einsum("bcp,bck->bpk", q, b).argmax(-1)  # [B, P]
    back = torch.einsum("bcp,bck->bpk", torch.gather(b, 2, match[:, None].expand(-1, C, -1)), a).argmax(-1)
    ok = ((back // w - cells // w).abs() <= 1) & ((back % w - cells % w).abs() <= 1)
    return match, ok


def train_latent_transformer(G: Generator, cfg: UCLTTrainConfig, *, generator_name: str,
                             progress: bool = True) -> dict:
    """Train the latent transformer on `G` (see the module docstring) and save it; returns what the card says."""
    from tqdm import tqdm

    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    device = next(G.parameters()).device
    size = (G.img_height, G.img_width)
    h = G.synthesis.block_resolutions[cfg.feature_block]
    cell = size[0] // h
    with torch.no_grad():
        w1, _ = _pairs(G, cfg, gen)
        f = G.synthesis.features(w1.to(device), up_to=cfg.feature_block)[-1]
        feat_scale = float(f.square().mean().sqrt())
        channels = f.shape[1]
    model = LatentTransformer(w_dim=G.w_dim, channels=channels, rows=cfg.rows, width=cfg.width, layers=cfg.layers,
                              heads=cfg.heads, feat_scale=feat_scale).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.iterations)
    t0, log, it = time.perf_counter(), [], 0
    P = cfg.max_points
    bar = tqdm(range(cfg.iterations), disable=not progress, desc="uclt")
    running = None
    for it in bar:
        with torch.no_grad():
            if it % max(cfg.reuse, 1) == 0:
                w1, w2 = (w.to(device) for w in _pairs(G, cfg, gen))
                f12 = G.synthesis.features(torch.cat([w1, w2]), up_to=cfg.feature_block)[-1]
                f1, f2 = f12.split(cfg.batch)
            cells = torch.randint(0, h * h, (cfg.batch, 4 * P), generator=gen).to(device)
            match, ok = feature_matches(f1, f2, cells)
            n = torch.randint(1, P + 1, (cfg.batch,), generator=gen).to(device)
            # the first n consistent matches of each example (examples with fewer use what they have)
            rank = ok.to(torch.int64).cumsum(1)
            take = ok & (rank <= n[:, None])
            order = torch.argsort((~take).to(torch.int64), dim=1, stable=True)[:, :P]
            valid = torch.gather(take, 1, order)
            src, dst = torch.gather(cells, 1, order), torch.gather(match, 1, order)
            sub = torch.randint(0, cell, (cfg.batch, P, 2), generator=gen).to(device)
            hr = torch.stack([src // h, src % h], -1) * cell + sub
            tr = torch.stack([dst // h, dst % h], -1) * cell + sub
            feats, pts, mots = [], [], []
            for b in range(cfg.batch):
                fb, pb, mb = drag_inputs(f1[b:b + 1], size, hr[b].to(torch.float32), tr[b].to(torch.float32))
                feats.append(fb), pts.append(pb), mots.append(mb)
            feats, pts, mots = torch.stack(feats), torch.stack(pts), torch.stack(mots)
            keep = valid.any(1)
        pred = model(w1[keep], feats[keep], pts[keep], mots[keep], valid[keep])
        loss = (pred[:, :cfg.rows] - w2[keep, :cfg.rows]).square().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        base = (w1[keep, :cfg.rows] - w2[keep, :cfg.rows]).square().mean()
        ratio = float(loss.detach() / base)  # the loss against that of no edit
        running = ratio if running is None else 0.98 * running + 0.02 * ratio
        if it % cfg.log_every == 0:
            log.append(dict(iteration=it, loss=float(loss.detach()), no_edit_loss=float(base), running_ratio=running,
                            minutes=(time.perf_counter() - t0) / 60))
            bar.set_postfix(ratio=f"{running:.3f}")
        if cfg.max_minutes is not None and time.perf_counter() - t0 > 60 * cfg.max_minutes:
            break
    minutes = (time.perf_counter() - t0) / 60
    card = dict(config={k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg).items()},
                iterations=it + 1, minutes=minutes, final_loss_ratio=running, log=log[-20:])
    out = Path(cfg.out) if cfg.out else default_weights(generator_name)
    save_transformer(model.cpu(), out, generator=generator_name, feature_block=cfg.feature_block,
                     card={k: v for k, v in card.items() if k != "log"})
    card["weights"] = str(out)
    card["parameters"] = sum(p.numel() for p in model.parameters())
    return card
