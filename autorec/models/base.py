"""The two model interfaces: CTR models score rows, sequential models rank the next item."""

from __future__ import annotations

import abc
from typing import Any, ClassVar

import pydantic
import torch
from torch import nn

from autorec.data.features import CTRData, Feature, SequentialData


class ModelConfig(pydantic.BaseModel):
    """Hyperparameters of one model. Unknown keys are errors, never silently ignored."""

    model_config = pydantic.ConfigDict(extra="forbid", validate_assignment=True)


class CTRModelConfig(ModelConfig):
    embedding_dim: int = pydantic.Field(16, ge=1, le=1024, description="default dim of every field")
    field_dims: dict[str, int] = pydantic.Field(
        default_factory=dict, description="per-field embedding dims overriding embedding_dim"
    )

    @pydantic.field_validator("field_dims")
    @classmethod
    def _positive(cls, dims: dict[str, int]) -> dict[str, int]:
        for name, dim in dims.items():
            if not 1 <= dim <= 1024:
                raise ValueError(f"field_dims['{name}'] = {dim} is outside 1..1024")
        return dims


class SequentialModelConfig(ModelConfig):
    hidden_dim: int = pydantic.Field(64, ge=4, le=1024)


class CTRModel(nn.Module, abc.ABC):
    """Maps a batch of feature columns to one logit per row."""

    name: ClassVar[str]
    Config: ClassVar[type[CTRModelConfig]] = CTRModelConfig
    trainable: ClassVar[bool] = True  # False for statistics baselines that need no optimiser
    # TrainConfig values this model trains best with; a user's settings still win.
    train_defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, features: list[Feature], config: CTRModelConfig):
        super().__init__()
        self.features = features
        self.config = config

    def prepare(self, data: CTRData) -> None:
        """Hook run once before training, e.g. to gather label statistics."""

    @abc.abstractmethod
    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Logits, shape [B]."""


class SequentialModel(nn.Module, abc.ABC):
    """Encodes a left-padded item sequence and scores every item as the next one.

    Item 0 is padding; logits have num_items + 1 columns and column 0 is never a valid answer.
    """

    name: ClassVar[str]
    Config: ClassVar[type[SequentialModelConfig]] = SequentialModelConfig
    trainable: ClassVar[bool] = True
    train_defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, num_items: int, max_len: int, config: SequentialModelConfig):
        super().__init__()
        self.num_items = num_items
        self.max_len = max_len
        self.config = config

    def prepare(self, data: SequentialData) -> None:
        """Hook run once before training, e.g. to count item popularity."""

    @abc.abstractmethod
    def loss(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Training loss for next-item targets at every position; targets == 0 are ignored.

        inputs, targets: LongTensor [B, L], targets[:, t] is the item after inputs[:, t].
        """

    @abc.abstractmethod
    def score(self, history: torch.Tensor) -> torch.Tensor:
        """Logits over all items for the item after each history, shape [B, num_items + 1]."""
