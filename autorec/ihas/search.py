"""Stage 1, search: train the model with gated embeddings, then read every instance's gates."""

from __future__ import annotations

import copy
import dataclasses

import torch
from torch import nn

from autorec.data.features import CTRData, TensorSplit
from autorec.ihas.gated_embedding import GatedFieldEmbedding, GateSchedule, find_gates, install_gates
from autorec.ihas.settings import IhasSettings
from autorec.trainer import TrainResult, split_settings, train_model


@dataclasses.dataclass
class SearchOutcome:
    result: TrainResult  # the training record (history, seconds); its metrics are the trainer's
    model: nn.Module  # the gated model as the schedule left it (last epoch), in eval mode
    gates: GatedFieldEmbedding


def run_search(model: str, data: CTRData, settings: IhasSettings) -> SearchOutcome:
    """Train `model` with every field at `settings.width`, gated, for the whole schedule.

    The gates are read from the last epoch, where the schedule ends (sparsity at full weight,
    polarised, cold), not from the trainer's best-validation epoch, which may come before the
    sparsity has acted; validation makes its choices in the retrain stage.
    """
    epochs = settings.search_epochs
    train_settings = {
        **settings.train_settings(),
        "embedding_dim": settings.width,
        "epochs": epochs,
        "patience": epochs,  # the schedule runs to its end
    }
    lr = split_settings(model, train_settings, "ctr")[1].lr
    built: list[nn.Module] = []
    last_state: dict[str, dict] = {}

    def adapt(module: nn.Module) -> None:
        install_gates(module, settings, lr)
        built.append(module)

    def keep_state(row: dict[str, float]) -> None:
        last_state["state"] = copy.deepcopy(built[0].state_dict())

    result = train_model(
        model, data, train_settings, adapt_model=adapt, on_epoch=keep_state,
        on_epoch_start=GateSchedule(settings, epochs),
    )  # fmt: skip
    module = built[0]
    if "state" in last_state:
        module.load_state_dict(last_state["state"])
    module.eval()
    return SearchOutcome(result, module, find_gates(module))


@torch.no_grad()
def gate_probabilities(
    model: nn.Module, split: TensorSplit, batch_size: int = 4096
) -> torch.Tensor:
    """[N, G] keep-probabilities of every row of `split` (the model in eval mode, on its device)."""
    gates = find_gates(model)
    model.eval()
    device = next(model.parameters()).device
    out = []
    for begin in range(0, len(split), batch_size):
        batch = {k: v.to(device) for k, v in split.batch(slice(begin, begin + batch_size)).items()}
        out.append(gates.probabilities(batch).cpu())
    return torch.cat(out) if out else torch.empty(0, gates.layout.gates)
