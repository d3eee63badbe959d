"""`synthetic`: seeded data with planted structure, so tests and search benchmarks know the optimum.

CTR: 12 categorical fields f0..f11 of very different vocabulary sizes, 50,000 rows. Only the
five fields in `USEFUL` carry signal. Field f's ids map to latent vectors u_f of rank r_f,
placed in a shared 16-dim space by a fixed random frame A_f (16 x r_f); the true logit is

    logit = b0 + sum_f bias_f[x_f] + scale * sum_{f<g useful} <A_f u_f[x_f], A_g u_g[x_g]>

and the label is drawn from Bernoulli(sigmoid(logit)), so even the true logit scores an AUC well
below 1 (about 0.8). The ranks are chosen so every useful field's whole latent space is seen by
its partners: an embedding of dimension r_f (projected into a common space) expresses field f
exactly and a smaller one cannot. Noise fields, the largest vocabularies among them, carry
nothing, so their optimum is the smallest dimension. Split: a seeded random permutation,
80/10/10 (protocol "random").

Sequential: 800 users and 300 items; each user's sequence (20-60 items) follows a planted Markov
chain: from item i the next item is one of its three successors with probability 0.5, 0.25 and
0.15, or a popularity-weighted random item with probability 0.1. Every item is the successor of
exactly three items. A first-order model beats popularity by far. Split: the shared
leave-one-out builder.

Spec: "synthetic" (seed 0), "synthetic:7" or "synthetic:seed=7".
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from autorec.data.base import Dataset
from autorec.data.features import CTRData, Feature, FeatureKind, SequentialData
from autorec.data.tasks import Interactions, build_sequential, cached, make_ctr
from autorec.errors import ConfigError

GENERATOR = "synthetic-v1"  # bump when the generator changes: it is part of every split hash
VOCAB_SIZES = {
    "f0": 5000, "f1": 200, "f2": 2000, "f3": 1000, "f4": 500, "f5": 100,
    "f6": 20, "f7": 1000, "f8": 50, "f9": 300, "f10": 10, "f11": 3,
}  # fmt: skip
USEFUL = {"f1": 16, "f3": 4, "f4": 8, "f6": 2, "f8": 4}  # field -> planted embedding rank
NOISE = tuple(name for name in VOCAB_SIZES if name not in USEFUL)
LATENT_DIM = 16
CTR_ROWS = 50_000
INTERACTION_SCALE = 1.6
BIAS_SCALE = 0.3
OFFSET = -0.5

SEQ_USERS, SEQ_ITEMS, SEQ_LENGTHS = 800, 300, (20, 60)
SUCCESSOR_PROBABILITIES = (0.5, 0.25, 0.15)  # the remaining 0.1 jumps to a popular item


@dataclasses.dataclass
class PlantedCTR:
    ids: dict[str, np.ndarray]  # field -> ids 1..V, one per row
    logit: np.ndarray
    label: np.ndarray
    indices: tuple[np.ndarray, np.ndarray, np.ndarray]  # train, valid, test rows


def generate_ctr(seed: int = 0) -> PlantedCTR:
    """The synthetic CTR table, its true logits and its random split."""
    rng = np.random.default_rng([seed, 1])
    ids = {name: rng.integers(1, size + 1, CTR_ROWS) for name, size in VOCAB_SIZES.items()}
    logit = np.full(CTR_ROWS, OFFSET)
    projected = {}
    for name, rank in USEFUL.items():
        size = VOCAB_SIZES[name]
        frame, _ = np.linalg.qr(rng.standard_normal((LATENT_DIM, rank)))
        latent = rng.standard_normal((size + 1, rank)) / np.sqrt(rank)
        bias = rng.normal(0.0, BIAS_SCALE, size + 1)
        projected[name] = (latent @ frame.T)[ids[name]]  # [rows, LATENT_DIM]
        logit += bias[ids[name]]
    names = list(USEFUL)
    pairs = sum(
        np.einsum("nd,nd->n", projected[a], projected[b])
        for i, a in enumerate(names)
        for b in names[i + 1 :]
    )
    logit += INTERACTION_SCALE * pairs
    label = (rng.random(CTR_ROWS) < 1.0 / (1.0 + np.exp(-logit))).astype(np.float32)
    order = rng.permutation(CTR_ROWS)
    n_train, n_valid = CTR_ROWS * 8 // 10, CTR_ROWS // 10
    indices = (
        np.sort(order[:n_train]),
        np.sort(order[n_train : n_train + n_valid]),
        np.sort(order[n_train + n_valid :]),
    )
    return PlantedCTR(ids, logit, label, indices)


def successor_table(seed: int = 0) -> np.ndarray:
    """[SEQ_ITEMS + 1, 3]: the planted successors of each item id (row 0 unused)."""
    rng = np.random.default_rng([seed, 2])
    table = np.zeros((SEQ_ITEMS + 1, len(SUCCESSOR_PROBABILITIES)), dtype=np.int64)
    for column in range(table.shape[1]):
        table[1:, column] = rng.permutation(SEQ_ITEMS) + 1
    return table


def item_popularity(seed: int = 0) -> np.ndarray:
    """Zipf-like jump and start probabilities over item ids 1..SEQ_ITEMS (index 0 unused)."""
    rng = np.random.default_rng([seed, 3])
    weights = np.zeros(SEQ_ITEMS + 1)
    weights[1:] = 1.0 / (rng.permutation(SEQ_ITEMS) + 5.0)
    return weights / weights.sum()


def generate_sequences(seed: int = 0) -> pd.DataFrame:
    """Events (user_id, item_id, timestamp) of the planted Markov chain, users in order."""
    rng = np.random.default_rng([seed, 4])
    successors, popularity = successor_table(seed), item_popularity(seed)
    lengths = rng.integers(SEQ_LENGTHS[0], SEQ_LENGTHS[1] + 1, SEQ_USERS)
    steps = SEQ_LENGTHS[1]
    items = np.zeros((SEQ_USERS, steps), dtype=np.int64)
    items[:, 0] = rng.choice(SEQ_ITEMS + 1, SEQ_USERS, p=popularity)
    cumulative = np.cumsum(SUCCESSOR_PROBABILITIES)
    for step in range(1, steps):
        draw = rng.random(SEQ_USERS)
        choice = np.searchsorted(cumulative, draw, side="right")  # 3 = jump
        jump = rng.choice(SEQ_ITEMS + 1, SEQ_USERS, p=popularity)
        follow = successors[items[:, step - 1], np.minimum(choice, 2)]
        items[:, step] = np.where(choice >= len(cumulative), jump, follow)
    keep = np.arange(steps)[None, :] < lengths[:, None]
    users, positions = np.nonzero(keep)
    return pd.DataFrame(
        {"user_id": users + 1, "item_id": items[users, positions], "timestamp": positions}
    )


class SyntheticDataset(Dataset):
    name = "synthetic"
    description = "seeded CTR and sequential data with planted useful fields, ranks and transitions"
    ctr_splits: ClassVar[tuple[str, ...]] = ("random",)
    useful_fields: ClassVar[dict[str, int]] = dict(USEFUL)
    noise_fields: ClassVar[tuple[str, ...]] = NOISE
    vocab_sizes: ClassVar[dict[str, int]] = dict(VOCAB_SIZES)

    def __init__(self, seed: int = 0):
        self.seed = seed

    def planted_ctr(self) -> PlantedCTR:
        return cached((GENERATOR, self.seed, "planted-ctr"), lambda: generate_ctr(self.seed))

    def true_logits(self, split: str = "test") -> np.ndarray:
        """The planted logits of one split's rows, aligned with that split's tensors."""
        splits = ("train", "valid", "test")
        if split not in splits:
            raise ConfigError(f"unknown split '{split}'; known: {', '.join(splits)}")
        planted = self.planted_ctr()
        return planted.logit[planted.indices[splits.index(split)]]

    def ctr(self, split: str = "random") -> CTRData:
        if split not in self.ctr_splits:
            raise ConfigError(f"dataset 'synthetic' has only the ctr split 'random', not '{split}'")
        return cached((GENERATOR, self.seed, "ctr"), self._build_ctr)

    def _build_ctr(self) -> CTRData:
        planted = self.planted_ctr()
        features = [
            Feature(name, FeatureKind.CATEGORICAL, size + 1) for name, size in VOCAB_SIZES.items()
        ]
        protocol = {
            "dataset": self.name,
            "task": "ctr",
            "name": "random",
            "generator": GENERATOR,
            "seed": self.seed,
            "fractions": [0.8, 0.1, 0.1],
            "ordering": "seeded permutation of the rows; each split in row order",
            "rows": [len(rows) for rows in planted.indices],
        }
        return make_ctr(self.name, planted.ids, features, planted.label, planted.indices, protocol)

    def sequential(self, max_len: int = 50) -> SequentialData:
        def build() -> SequentialData:
            data = build_sequential(
                Interactions(self.name, generate_sequences(self.seed), history=0), max_len
            )
            data.protocol.update(generator=GENERATOR, seed=self.seed)
            return data

        return cached((GENERATOR, self.seed, "sequential", max_len), build)

    def info(self) -> dict[str, Any]:
        planted = self.planted_ctr()
        return {
            "name": self.name,
            "description": self.description,
            "source": f"generated ({GENERATOR}, seed {self.seed})",
            "rows": CTR_ROWS,
            "label_rate": round(float(planted.label.mean()), 4),
            "features": {name: "categorical" for name in VOCAB_SIZES},
            "tasks": list(self.tasks),
            "ctr_splits": list(self.ctr_splits),
            "planted": {
                "useful": dict(USEFUL),
                "noise": list(NOISE),
                "vocab_sizes": dict(VOCAB_SIZES),
                "optimum": "useful field: embedding dim = its rank; noise field: the smallest dim",
                "sequential": {
                    "users": SEQ_USERS,
                    "items": SEQ_ITEMS,
                    "lengths": list(SEQ_LENGTHS),
                    "successor_probabilities": list(SUCCESSOR_PROBABILITIES),
                    "jump": round(1 - sum(SUCCESSOR_PROBABILITIES), 6),
                },
            },
        }


def from_spec(argument: str | None) -> SyntheticDataset:
    """'synthetic' -> seed 0; 'synthetic:7' or 'synthetic:seed=7' -> seed 7."""
    if not argument:
        return SyntheticDataset()
    text = argument.removeprefix("seed=")
    try:
        return SyntheticDataset(int(text))
    except ValueError:
        raise ConfigError(
            f"synthetic takes an integer seed ('synthetic:7'), got '{argument}'"
        ) from None
