"""Bernoulli gates over embedding-dimension blocks, and the two regularisers of iHAS.

Each field's embedding of width D is cut into blocks of sizes 1, 1, 2, 4, ... (summing to D), so
log2(D) + 1 gates reach every kept width from 1 to D. A small network reads an instance's
embeddings and gives one keep-probability per (field, block). In the search stage a gate is a
relaxed Bernoulli (binary concrete) sample, hardened to 0/1 on the forward pass with the relaxed
sample's gradient (straight-through), so the model trains on the same sparse embeddings it is
judged on; afterwards the gate is deterministic: kept when its probability exceeds one half.
"""

from __future__ import annotations

import torch
from torch import nn


def block_sizes(width: int) -> list[int]:
    """[1, 1, 2, 4, ...] summing to `width`: each block as wide as all the blocks before it."""
    sizes = [1]
    while sum(sizes) < width:
        sizes.append(min(sum(sizes), width - sum(sizes)))
    return sizes


class GateLayout:
    """Where each field's gates sit in the flat gate vector, and each gate's block size."""

    def __init__(self, widths: dict[str, int]):
        self.fields = list(widths)
        self.widths = dict(widths)
        self.slices: dict[str, slice] = {}
        sizes: list[int] = []
        for name, width in widths.items():
            blocks = block_sizes(width)
            self.slices[name] = slice(len(sizes), len(sizes) + len(blocks))
            sizes += blocks
        self.sizes = torch.tensor(sizes, dtype=torch.float32)
        self.field_of_gate = torch.tensor(
            [i for i, name in enumerate(self.fields) for _ in range(len(block_sizes(widths[name])))]
        )

    @property
    def gates(self) -> int:
        return len(self.sizes)

    def expand(self, gates: torch.Tensor, name: str) -> torch.Tensor:
        """Per-dimension mask [B, D] of field `name` from the flat gates [B, G]."""
        sizes = self.sizes[self.slices[name]].long().to(gates.device)
        return torch.repeat_interleave(gates[:, self.slices[name]], sizes, dim=1)

    def kept_widths(self, gates: torch.Tensor) -> torch.Tensor:
        """Kept dimensions per field [B, F] from 0/1 (or expected, from probabilities) gates."""
        weighted = gates * self.sizes.to(gates.device)
        out = torch.zeros(gates.shape[0], len(self.fields), device=gates.device, dtype=gates.dtype)
        return out.index_add_(1, self.field_of_gate.to(gates.device), weighted)

    def deterministic(self, probabilities: torch.Tensor) -> torch.Tensor:
        """0/1 gates: kept above one half, and never a field with no block (its likeliest stays)."""
        hard = (probabilities > 0.5).to(probabilities.dtype)
        for name in self.fields:
            part = self.slices[name]
            empty = hard[:, part].sum(dim=1) == 0
            if empty.any():
                best = probabilities[:, part].argmax(dim=1)
                rows = torch.nonzero(empty).squeeze(1)
                hard[rows, part.start + best[rows]] = 1.0
        return hard


def relaxed_bernoulli(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Hard 0/1 samples of Bernoulli(sigmoid(logits)) whose gradient is the binary-concrete
    relaxation's at `temperature` (straight-through)."""
    uniform = torch.rand_like(logits).clamp(1e-6, 1 - 1e-6)
    noise = torch.log(uniform) - torch.log1p(-uniform)
    soft = torch.sigmoid((logits + noise) / temperature)
    hard = (soft > 0.5).to(soft.dtype)
    return hard + soft - soft.detach()


def sparsity_penalty(
    probabilities: torch.Tensor, layout: GateLayout, field_weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Expected kept share of each field's width, averaged over rows and over fields (0..1),
    equally (the paper's) or by `field_weights` summing to 1 (e.g. each field's share of the
    table rows, so the penalty follows embedding parameters). The gradient on a gate is
    proportional to its block's size, so wide blocks go first."""
    device = probabilities.device
    widths = torch.tensor([layout.widths[n] for n in layout.fields], device=device)
    shares = (layout.kept_widths(probabilities) / widths).mean(dim=0)
    if field_weights is None:
        return shares.mean()
    return (shares * field_weights.to(device)).sum()


def polarisation_penalty(probabilities: torch.Tensor) -> torch.Tensor:
    """4 p (1 - p) averaged over gates and rows (0..1): zero when every gate is surely kept or
    surely dropped, so it pushes probabilities away from one half (bi-polarisation)."""
    return (4.0 * probabilities * (1.0 - probabilities)).mean()


class GateNetwork(nn.Module):
    """An instance's concatenated field embeddings -> one keep-logit per gate.

    A logit is a shared per-gate bias plus an instance-wise term. Adam moves each weight by about
    lr per step whatever its gradient's size, so the bias is scaled by `gain` (its logit moves
    about gain * lr per step): a search stage of a few epochs can open or shut a gate for
    everyone, while the instance-wise term moves at the model's pace and only bends the pattern
    where instances consistently disagree (`instance_gain` speeds it up the same way).
    """

    def __init__(
        self, in_dim: int, gates: int, hidden: int, open_bias: float, gain: float,
        instance_gain: float = 1.0,
    ):  # fmt: skip
        super().__init__()
        # The embeddings start at std 0.01 and grow unevenly: normalising each instance's input
        # lets the instance-wise term see its direction, not its scale.
        self.net = nn.Sequential(
            nn.LayerNorm(in_dim, elementwise_affine=False),
            nn.Linear(in_dim, hidden),
            nn.ReLU(),
            nn.Linear(hidden, gates, bias=False),
        )
        with torch.no_grad():
            self.net[-1].weight.mul_(0.1 / instance_gain)
        self.gain, self.instance_gain = gain, instance_gain
        # Gates start open (p = sigmoid(open_bias)): the model first learns at full width and the
        # sparsity term then closes the blocks the loss does not defend.
        self.bias = nn.Parameter(torch.full((gates,), open_bias / gain))

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.instance_gain * self.net(embeddings) + self.gain * self.bias
