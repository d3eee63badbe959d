"""The feature declaration and the task containers every model is built from.

A dataset turns its raw files into one of two containers: `CTRData` (a table of feature columns
and a binary label, split train/valid/test) or `SequentialData` (per-user item sequences under the
leave-one-out protocol). Models read only `Feature` declarations and tensors, never raw files.

Conventions shared by every dataset and model:
- id 0 is padding / unknown in every vocabulary; real ids are 1..vocab_size-1;
- sequences run oldest -> newest and are padded on the left with 0;
- a split's hash covers its protocol and its row assignment, so two runs on the same hash saw
  exactly the same data.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
from typing import Any, Sequence

import numpy as np
import torch


class FeatureKind(str, enum.Enum):
    CATEGORICAL = "categorical"  # LongTensor [N]
    MULTI_HOT = "multi_hot"  # LongTensor [N, max_len], a bag of ids padded with 0, mean-pooled
    SEQUENCE = "sequence"  # LongTensor [N, max_len], ordered ids padded on the left with 0
    NUMERIC = "numeric"  # FloatTensor [N], standardised on the training split


@dataclasses.dataclass(frozen=True)
class Feature:
    """One input field.

    `shares_embedding_with` names the categorical field whose table this field reuses: a user's
    history of items is looked up in the `item_id` table, which is what lets DIN attend from the
    target item over the history.
    """

    name: str
    kind: FeatureKind
    vocab_size: int = 0  # rows in the embedding table, padding row 0 included; 0 for numeric
    max_len: int = 1
    shares_embedding_with: str | None = None

    @property
    def owns_table(self) -> bool:
        return self.shares_embedding_with is None


@dataclasses.dataclass
class TensorSplit:
    """Rows of one split: feature columns by name, and a float label in {0, 1}.

    `timestamp` is each row's event time where the source has one: not a model input, only the
    order in which a streaming evaluation replays the rows (trainer: models with `observe`).
    """

    columns: dict[str, torch.Tensor]
    label: torch.Tensor
    timestamp: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.label.shape[0])

    def batch(self, index: torch.Tensor | slice) -> dict[str, torch.Tensor]:
        return {name: column[index] for name, column in self.columns.items()}


@dataclasses.dataclass
class CTRData:
    dataset: str
    features: list[Feature]
    train: TensorSplit
    valid: TensorSplit
    test: TensorSplit
    protocol: dict[str, Any]  # how the split was made: name, fractions, ordering, seed
    split_hash: str
    # Sensitive attributes known for evaluation but not given to the model: attribute -> group
    # id per user id (0 unknown). A categorical feature of the same name is used otherwise.
    user_groups: dict[str, torch.Tensor] = dataclasses.field(default_factory=dict)

    def feature(self, name: str) -> Feature:
        for feature in self.features:
            if feature.name == name:
                return feature
        raise KeyError(name)


@dataclasses.dataclass
class SequentialData:
    """Leave-one-out next-item data.

    Item ids run 1..num_items (0 pads). For each user with at least three interactions the last
    item is the test target and the one before it the validation target; `train` holds each user's
    items before the validation target. `*_history` are the model inputs (the most recent
    `max_len` items before the target, left-padded); `*_seen` are all of the user's items before
    the target, which full-ranking evaluation excludes from the candidates.
    """

    dataset: str
    num_items: int
    max_len: int
    train: list[torch.Tensor]
    valid_history: torch.Tensor
    valid_target: torch.Tensor
    valid_seen: list[torch.Tensor]
    test_history: torch.Tensor
    test_target: torch.Tensor
    test_seen: list[torch.Tensor]
    protocol: dict[str, Any]
    split_hash: str
    # Side information for beyond-accuracy metrics and re-ranking (autorec.data.attributes):
    # attribute -> group id of each sequence's user (0 unknown), and item genres as a bool
    # matrix [num_items + 1, G] (row 0, padding, all False). Empty/None where the data has none.
    user_groups: dict[str, torch.Tensor] = dataclasses.field(default_factory=dict)
    item_genres: torch.Tensor | None = None


def pad_left(sequences: Sequence[Sequence[int]], max_len: int) -> torch.Tensor:
    """The last `max_len` ids of each sequence, left-padded with 0, as a LongTensor [N, max_len]."""
    out = np.zeros((len(sequences), max_len), dtype=np.int64)
    for row, seq in enumerate(sequences):
        tail = list(seq)[-max_len:] if max_len > 0 else []
        if tail:
            out[row, max_len - len(tail) :] = tail
    return torch.from_numpy(out)


def split_hash(protocol: dict[str, Any], *arrays: np.ndarray | torch.Tensor) -> str:
    """A short, stable fingerprint of a protocol and the arrays that define its row assignment."""
    digest = hashlib.sha256(json.dumps(protocol, sort_keys=True, default=str).encode())
    for array in arrays:
        if isinstance(array, torch.Tensor):
            array = array.detach().cpu().numpy()
        array = np.ascontiguousarray(array)
        digest.update(str(array.dtype).encode() + str(array.shape).encode())
        digest.update(array.tobytes())
    return digest.hexdigest()[:16]
