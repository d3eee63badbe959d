"""A TopK sparse autoencoder over a recommender's hidden states (RecSAE, Wang et al.).

    z = TopK(ReLU(W_enc (x - b_pre) + b_enc))      k non-zero latents out of `width`
    x_hat = W_dec z + b_pre                         decoder columns of unit norm

TopK fixes the sparsity exactly (no L1 coefficient to tune, no shrinkage of the active latents),
as in RecSAE and Gao et al.'s "Scaling and evaluating sparse autoencoders". `b_pre` starts at the
data mean, the encoder starts as the decoder's transpose, and an auxiliary loss (AuxK) lets the
latents that have not fired for a while reconstruct the residual, so few end dead on a few
thousand training rows. Inputs are divided by their mean norm first, so one learning rate fits
any model width.
"""

from __future__ import annotations

import dataclasses

import pydantic
import torch
import torch.nn.functional as F
from torch import nn


class SAEConfig(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")

    expansion: int = pydantic.Field(8, ge=1, le=64, description="latents per hidden dimension")
    k: int = pydantic.Field(8, ge=1, le=512, description="active latents per input (TopK)")
    epochs: int = pydantic.Field(30, ge=1, le=10000)
    batch_size: int = pydantic.Field(256, ge=1, le=65536)
    lr: float = pydantic.Field(2e-3, gt=0, le=1)
    aux_k: int = pydantic.Field(32, ge=0, le=4096, description="dead latents the AuxK loss uses")
    aux_weight: float = pydantic.Field(1 / 32, ge=0, le=1)
    dead_after: int = pydantic.Field(
        2000, ge=1, description="inputs without firing after which a latent counts as dead"
    )
    seed: int = pydantic.Field(0, ge=0)


class SparseAutoencoder(nn.Module):
    def __init__(self, dim: int, width: int, k: int):
        super().__init__()
        if not 1 <= k <= width:
            raise ValueError(f"k ({k}) must be between 1 and the number of latents ({width})")
        self.dim, self.width, self.k = dim, width, k
        self.pre_bias = nn.Parameter(torch.zeros(dim))
        self.encoder = nn.Linear(dim, width)
        self.decoder = nn.Parameter(torch.randn(width, dim) / dim**0.5)
        self.register_buffer("scale", torch.ones(()))
        self.normalise_decoder()
        with torch.no_grad():
            self.encoder.weight.copy_(self.decoder)
            self.encoder.bias.zero_()

    @torch.no_grad()
    def normalise_decoder(self) -> None:
        self.decoder.div_(self.decoder.norm(dim=1, keepdim=True).clamp(min=1e-8))

    def pre_activations(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.encoder(x / self.scale - self.pre_bias))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Sparse codes [N, width]: the k largest pre-activations of each row, the rest 0."""
        pre = self.pre_activations(x)
        values, index = pre.topk(self.k, dim=-1)
        return torch.zeros_like(pre).scatter_(-1, index, values)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        return (codes @ self.decoder + self.pre_bias) * self.scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


@dataclasses.dataclass
class SAEFit:
    sae: SparseAutoencoder
    explained_variance: float  # 1 - SSE / SST over the training rows: 1 is perfect, 0 the mean
    dead_latents: int  # latents that fire on no training row
    losses: list[float]  # mean reconstruction loss per epoch (normalised units)


def explained_variance(x: torch.Tensor, x_hat: torch.Tensor) -> float:
    """Fraction of variance explained: 1 - sum |x - x_hat|^2 / sum |x - mean(x)|^2."""
    total = (x - x.mean(dim=0)).pow(2).sum()
    return float(1 - (x - x_hat).pow(2).sum() / total.clamp(min=1e-12))


def train_sae(hidden: torch.Tensor, config: SAEConfig | None = None) -> SAEFit:
    """Fit a TopK SAE to `hidden` [N, d] (float rows); deterministic for a given seed."""
    config = config or SAEConfig()
    x = hidden.detach().float().cpu()
    rows, dim = x.shape
    generator = torch.Generator().manual_seed(config.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        sae = SparseAutoencoder(dim, dim * config.expansion, min(config.k, dim * config.expansion))
    with torch.no_grad():
        sae.scale.fill_(float(x.norm(dim=1).mean().clamp(min=1e-8)))
        sae.pre_bias.copy_(x.mean(dim=0) / sae.scale)
    optimiser = torch.optim.Adam(sae.parameters(), lr=config.lr)
    since_fired = torch.zeros(sae.width)
    losses = []
    for _ in range(config.epochs):
        order = torch.randperm(rows, generator=generator)
        total = 0.0
        for begin in range(0, rows, config.batch_size):
            batch = x[order[begin : begin + config.batch_size]] / sae.scale
            loss, fired = _batch_loss(sae, batch, since_fired > config.dead_after, config)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            _drop_parallel_gradient(sae)
            optimiser.step()
            sae.normalise_decoder()
            since_fired += len(batch)
            since_fired[fired] = 0
            total += float(loss.detach()) * len(batch)
        losses.append(total / rows)
    sae.eval()
    with torch.no_grad():
        codes = torch.cat([sae.encode(x[b : b + 4096]) for b in range(0, rows, 4096)])
        fve = explained_variance(x, sae.decode(codes))
        dead = int((codes > 0).sum(dim=0).eq(0).sum())
    return SAEFit(sae, fve, dead, losses)


def _batch_loss(sae: SparseAutoencoder, batch: torch.Tensor, dead: torch.Tensor, config: SAEConfig):
    """Reconstruction MSE (normalised units) plus AuxK on the dead latents; a bool mask of the
    latents that fired in this batch."""
    pre = F.relu(sae.encoder(batch - sae.pre_bias))
    values, index = pre.topk(sae.k, dim=-1)
    codes = torch.zeros_like(pre).scatter(-1, index, values)
    reconstruction = codes @ sae.decoder + sae.pre_bias
    residual = batch - reconstruction
    loss = residual.pow(2).sum(dim=1).mean()
    aux_k = min(config.aux_k, int(dead.sum()))
    if aux_k and config.aux_weight:
        # The dead latents' best k try to explain what the live ones missed.
        dead_pre = pre.masked_fill(~dead, 0.0)
        values, index = dead_pre.topk(aux_k, dim=-1)
        aux = torch.zeros_like(pre).scatter(-1, index, values) @ sae.decoder
        loss = loss + config.aux_weight * (residual.detach() - aux).pow(2).sum(dim=1).mean()
    return loss, codes.detach().gt(0).any(dim=0)


def _drop_parallel_gradient(sae: SparseAutoencoder) -> None:
    """Keep decoder rows on the unit sphere: remove the gradient along each row."""
    grad = sae.decoder.grad
    if grad is not None:
        grad -= (grad * sae.decoder).sum(dim=1, keepdim=True) * sae.decoder
