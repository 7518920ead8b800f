"""Training UserControllableLT's latent transformer on a generator (`scripts/train_uclt.py`).

Endo, "User-Controllable Latent Transformer for StyleGAN Image Layout Editing", Pacific Graphics 2022. Self-
supervised from the generator, as the paper's: a face w1 = mapping(z1) and a second face w2 made by moving w1's
first `rows` rows a random fraction towards another latent (the paired protocol's way to change the layout);
point motions between the two images come from the generator's own features: random cells of image 1 matched to
their nearest feature in image 2 (cosine similarity), kept when the match maps back within one cell (cycle
consistency); the loss is || w_hat - w2 ||^2 over the edited rows. Nothing of the landmark detector is used, so
the Table 1 protocol measures it as it measures the optimisation methods.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

import torch

from draggan.methods.configs import UCLTTrainConfig
from draggan.methods.latent_transformer import (
    LatentTransformer,
    default_weights,
    drag_inputs,
    save_transformer,
)
from draggan.networks import Generator
from draggan.threads import synthesis_macs, use_threads


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

    use_threads(cfg.threads, work_macs=synthesis_macs(G, batch=cfg.batch))  # batches of pairs: shared work
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
