"""A `FieldEmbedding` whose dimension blocks are kept or dropped per instance by gates.

`install_gates(model, settings)` swaps a built CTR model's `FieldEmbedding` for a
`GatedFieldEmbedding` that owns the same tables, so every CTR model (fm, deepfm, dcnv2, din, dare)
is gated without a line of its own changed: all of them read embeddings through `lookup`. A
forward pre-hook on the model computes the batch's gates once, from the ungated embeddings; each
`lookup` then multiplies its field's vectors by that field's mask (a history field shares its
table owner's mask). The trainer adds `extra_loss()`, the weighted regularisers, to the loss.
"""

from __future__ import annotations

import torch
from torch import nn

from autorec.errors import ConfigError
from autorec.ihas.gates import (
    GateLayout,
    GateNetwork,
    polarisation_penalty,
    relaxed_bernoulli,
    sparsity_penalty,
)
from autorec.ihas.settings import GateSettings
from autorec.models.embedding import FieldEmbedding


class GatedFieldEmbedding(FieldEmbedding):
    def __init__(self, base: FieldEmbedding, settings: GateSettings, lr: float = 1e-3):
        nn.Module.__init__(self)
        self.features = base.features
        self.dims = dict(base.dims)
        self.tables = base.tables  # the same parameters: the model keeps training them
        self.layout = GateLayout({name: self.dims[name] for name in self.tables})
        self.gate = GateNetwork(
            sum(self.dims[n] for n in self.names), self.layout.gates, settings.hidden,
            settings.open_bias, settings.gate_step / lr, settings.instance_gain,
        )  # fmt: skip
        self.temperature = settings.temperature
        self.sparsity_weight = settings.sparsity
        rows = torch.tensor([float(self.tables[n].weight.shape[0]) for n in self.layout.fields])
        # "params": a field's share of the penalty is its share of the table rows, so closing a
        # block of a large table is worth more (the embedding_dims space's embedding_params).
        self.field_weights = rows / rows.sum() if settings.sparsity_cost == "params" else None
        self.polarisation_weight = settings.polarisation
        self._masks: dict[str, torch.Tensor] | None = None
        self._penalty: torch.Tensor | None = None

    def gate_logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """[B, G] keep-logits from the ungated embeddings; detached, so the regularisers shape
        the gates and never shrink the embeddings the prediction needs."""
        masks, self._masks = self._masks, None
        try:
            inputs = torch.cat(FieldEmbedding.pooled(self, batch), dim=1).detach()
        finally:
            self._masks = masks
        return self.gate(inputs)

    def probabilities(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.sigmoid(self.gate_logits(batch))

    def begin(self, batch: dict[str, torch.Tensor]) -> None:
        """Gates for this batch: sampled while training, deterministic in eval mode."""
        self._masks = None
        logits = self.gate_logits(batch)
        probabilities = torch.sigmoid(logits)
        if self.training:
            gates = relaxed_bernoulli(logits, self.temperature)
            self._penalty = self.sparsity_weight * sparsity_penalty(
                probabilities, self.layout, self.field_weights
            ) + self.polarisation_weight * polarisation_penalty(probabilities)
        else:
            gates = self.layout.deterministic(probabilities)
        self._masks = {name: self.layout.expand(gates, name) for name in self.layout.fields}

    def end(self) -> None:
        self._masks = None

    def lookup(self, batch: dict[str, torch.Tensor], name: str) -> torch.Tensor:
        vectors = super().lookup(batch, name)
        if self._masks is None:
            return vectors
        mask = self._masks[self.features[name].shares_embedding_with or name]
        return vectors * (mask.unsqueeze(1) if vectors.dim() == 3 else mask)

    def extra_loss(self) -> torch.Tensor:
        """The last training batch's weighted sparsity and polarisation terms."""
        if self._penalty is None:
            return torch.zeros(())
        penalty, self._penalty = self._penalty, None
        return penalty

    def parameter_count(self) -> int:
        return super().parameter_count() + sum(p.numel() for p in self.gate.parameters())


def install_gates(
    model: nn.Module, settings: GateSettings, lr: float = 1e-3
) -> GatedFieldEmbedding:
    """Replace `model`'s FieldEmbedding by a gated one everywhere the model holds it; `lr` is
    the learning rate it will train with (the gates' speed is set against it)."""
    # The width-bearing table set is `model.embedding` in every CTR model; other FieldEmbeddings
    # (FM's per-id linear weights, width 1) have no dimensions to search.
    base = getattr(model, "embedding", None)
    if type(base) is not FieldEmbedding:
        name = getattr(model, "name", type(model).__name__)
        raise ConfigError(
            f"model '{name}' has no field embeddings to gate; iHAS works with CTR models that "
            "embed their fields (fm, deepfm, dcnv2, din, dare)"
        )
    gated = GatedFieldEmbedding(base, settings, lr).train(base.training)
    for module in list(model.modules()):
        for child_name, child in list(module.named_children()):
            if child is base:
                setattr(module, child_name, gated)
    model.register_forward_pre_hook(lambda _module, args: gated.begin(args[0]))
    model.register_forward_hook(lambda _module, _args, _output: gated.end())
    return gated


def find_gates(model: nn.Module) -> GatedFieldEmbedding:
    for module in model.modules():
        if isinstance(module, GatedFieldEmbedding):
            return module
    raise ConfigError("this model has no iHAS gates")


class GateSchedule:
    """The per-epoch schedule, by progress t = (epoch - 1) / (epochs - 1) from 0 to 1:

    - temperature anneals geometrically from its start to its end value;
    - sparsity ramps in linearly from 0 and reaches its weight halfway: the embeddings start at
      init scale (std 0.01), where the loss cannot yet defend any block, so a full-strength
      penalty from the first step closes blocks at random and they never reopen;
    - polarisation ramps in linearly over the whole schedule, so gates first find their
      direction and only then are pushed to 0 or 1.
    """

    def __init__(self, settings: GateSettings, epochs: int):
        self.settings, self.epochs = settings, max(epochs, 1)

    def __call__(self, epoch: int, model: nn.Module) -> None:
        gated = find_gates(model)
        progress = (epoch - 1) / max(self.epochs - 1, 1) if self.epochs > 1 else 1.0
        start, end = self.settings.temperature, self.settings.final_temperature
        gated.temperature = start * (end / start) ** progress
        gated.sparsity_weight = self.settings.sparsity * min(1.0, 2 * progress)
        gated.polarisation_weight = self.settings.polarisation * progress
