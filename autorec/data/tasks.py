"""Shared task builders: one table of interactions -> `CTRData` and `SequentialData`.

Every event-log source (MovieLens, a user's CSV or Parquet file, synthetic sequences) reduces its
raw files to an `Interactions`: one row per event in file order, plus optional user-side and
item-side tables. The builders here turn that into the task containers under one recorded
protocol, so every dataset splits, encodes and hashes the same way.

Choices shared by every dataset (each is also written into the task's `protocol`):
- Vocabularies are built on the whole dataset, not on the training split. Ids carry no label
  information, so this leaks nothing; a value first seen after training keeps its own, untrained
  row. Id 0 is padding/unknown, real ids follow the sorted order of the raw values.
- Chronological order is a stable sort on the timestamp: ties keep file order. A source without
  timestamps passes the file position as its timestamp.
- "user_time": per user in chronological order, n_train = floor(0.8 n) rows train,
  floor(0.9 n) - n_train valid, the rest test (a user with one rating lands in test).
  "global_time": all rows in chronological order, the same floors over the whole table.
  Each split keeps its rows in file order.
- "hist_items": the user's last `history` items strictly before the event in the user's
  chronological order, whatever split they fall in; never the event itself or anything later.
- Numeric features are standardised with the training split's mean and standard deviation;
  missing values become 0 (the training mean).
- Sequential: per-user leave-one-out as `SequentialData` documents; item ids 1..num_items.

Built tasks are cached per process (`cached`): a search trains many models on the same data, so
consumers must treat the returned tensors as read-only.
"""

from __future__ import annotations

import abc
import collections
import dataclasses
import threading
import zlib
from collections.abc import Callable, Hashable
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch

from autorec.data.attributes import sequential_side_info
from autorec.data.base import CTR_SPLITS, Dataset
from autorec.data.features import (
    CTRData,
    Feature,
    FeatureKind,
    SequentialData,
    TensorSplit,
    pad_left,
    split_hash,
)
from autorec.errors import ConfigError

HISTORY = "hist_items"
FRACTIONS = (0.8, 0.1, 0.1)
ORDERING = "stable sort on timestamp; ties keep file order"
VOCABULARY = "built on the whole dataset, sorted raw values -> 1..V-1; 0 = padding/unknown"
COLUMN_KINDS = ("categorical", "multi_hot", "sequence", "numeric", "text")
SIDES = ("event", "user", "item")


@dataclasses.dataclass(frozen=True)
class Column:
    """One raw input column and how it becomes a feature.

    kind: "categorical" (a scalar), "multi_hot" (a bag of tokens), "sequence" (ordered tokens,
    the newest last), "numeric", or "text" (words hashed into `buckets` ids, a multi-hot bag).
    side: where the column lives: the events table, or the user or item table (joined by id).
    """

    name: str
    kind: str
    side: str = "event"
    separator: str | None = None  # multi_hot / sequence; None splits on runs of whitespace
    max_len: int | None = None  # multi_hot / sequence / text; None = the longest row
    item_vocabulary: bool = False  # sequence only: tokens are item ids, sharing item_id's table
    categories: tuple[Any, ...] | None = None  # categorical only: a fixed vocabulary, in order
    buckets: int = 1000  # text only

    def __post_init__(self) -> None:
        if self.kind not in COLUMN_KINDS:
            raise ValueError(f"column kind '{self.kind}' is not one of {COLUMN_KINDS}")
        if self.side not in SIDES:
            raise ValueError(f"column side '{self.side}' is not one of {SIDES}")


@dataclasses.dataclass
class Interactions:
    """The raw events of one dataset, before ids are assigned.

    `events` has one row per event in file order with columns user_id, item_id, timestamp
    (numeric), `label` (float 0/1) when the source has one, and the event-side columns. `users`
    and `items` are indexed by the raw user and item ids.
    """

    dataset: str
    events: pd.DataFrame
    users: pd.DataFrame | None = None
    items: pd.DataFrame | None = None
    columns: tuple[Column, ...] = ()
    label_rule: str | None = None  # how `label` was made, e.g. "rating >= 4"; None: no label
    history: int = 20  # length of hist_items; 0 leaves it out

    @property
    def has_label(self) -> bool:
        return "label" in self.events.columns

    def summary(self) -> dict[str, Any]:
        events = self.events
        summary: dict[str, Any] = {
            "rows": len(events),
            "users": int(events["user_id"].nunique()),
            "items": int(events["item_id"].nunique()),
        }
        if self.has_label:
            summary["label_rate"] = round(float(events["label"].mean()), 4)
            summary["label"] = self.label_rule
        return summary

    def feature_kinds(self) -> dict[str, str]:
        kinds = {"user_id": "categorical", "item_id": "categorical"}
        for column in self.columns:
            kinds[column.name] = "multi_hot" if column.kind == "text" else column.kind
        if self.history:
            kinds[HISTORY] = "sequence"
        return kinds


# ---------------------------------------------------------------------------------------------
# Ordering and splits


def chronological_order(user_codes: np.ndarray, timestamps: np.ndarray) -> np.ndarray:
    """Row order grouping users together, each user's rows by time, ties in file order."""
    return np.lexsort((np.arange(len(user_codes)), timestamps, user_codes))


def _group_rank(sorted_groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Position of each row within its run of equal values, and that run's length."""
    n = len(sorted_groups)
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    first = np.r_[True, sorted_groups[1:] != sorted_groups[:-1]]
    starts = np.flatnonzero(first)
    counts = np.diff(np.r_[starts, n])
    start_of_row = np.repeat(starts, counts)
    return np.arange(n) - start_of_row, np.repeat(counts, counts)


def assign_splits(user_codes: np.ndarray, timestamps: np.ndarray, split: str) -> np.ndarray:
    """0 (train), 1 (valid) or 2 (test) for every row, in file order."""
    n = len(user_codes)
    if split == "user_time":
        order = chronological_order(user_codes, timestamps)
        rank, count = _group_rank(user_codes[order])
    elif split == "global_time":
        order = np.lexsort((np.arange(n), timestamps))
        rank, count = np.arange(n), np.full(n, n)
    else:
        raise ConfigError(f"unknown ctr split '{split}'; known: {', '.join(CTR_SPLITS)}")
    # Integer arithmetic: floor(0.8 n) without float rounding surprises.
    n_train, n_train_valid = (8 * count) // 10, (9 * count) // 10
    in_order = np.where(rank < n_train, 0, np.where(rank < n_train_valid, 1, 2)).astype(np.int8)
    assignment = np.empty(n, dtype=np.int8)
    assignment[order] = in_order
    return assignment


def history_matrix(
    user_codes: np.ndarray, item_ids: np.ndarray, timestamps: np.ndarray, max_len: int
) -> np.ndarray:
    """For every event, the user's last `max_len` items strictly before it, left-padded with 0."""
    order = chronological_order(user_codes, timestamps)
    items = item_ids[order]
    rank, _ = _group_rank(user_codes[order])
    # Window s holds the max_len items just before position s of the chronological order; slots
    # reaching back past the start of the event's user are blanked.
    padded = np.concatenate([np.zeros(max_len, dtype=np.int64), items.astype(np.int64)])
    windows = np.lib.stride_tricks.sliding_window_view(padded, max_len)
    position = np.empty_like(order)
    position[order] = np.arange(len(order))  # file row -> chronological position
    reaches_back = max_len - np.arange(max_len)  # slot j holds the item max_len - j back
    return np.where(reaches_back[None, :] <= rank[position, None], windows[position], 0)


# ---------------------------------------------------------------------------------------------
# Encoding


def encode_ids(
    values: pd.Series, categories: tuple[Any, ...] | None = None
) -> tuple[np.ndarray, pd.Index]:
    """Ids 1..V-1 for a column of raw values (missing -> 0) and the vocabulary (id - 1 -> value)."""
    if categories is not None:
        codes = pd.Categorical(values, categories=list(categories)).codes.astype(np.int64)
        vocabulary = pd.Index(list(categories))
    else:
        codes, vocabulary = pd.factorize(values, sort=True)
        vocabulary = pd.Index(vocabulary)
    return codes.astype(np.int64) + 1, vocabulary


def _tokens(values: pd.Series, column: Column) -> tuple[np.ndarray, pd.Series]:
    """Row position and token of every token of a list-valued text column, in order."""
    text = values.reset_index(drop=True).fillna("").astype(str)
    if column.kind == "text":
        lists = text.str.lower().str.findall(r"\w+")
    elif column.separator is None or not column.separator.strip():
        lists = text.str.split()
    else:
        lists = text.str.split(column.separator, regex=False)
    exploded = lists.explode()
    exploded = exploded[exploded.notna()].astype(str).str.strip()
    exploded = exploded[exploded != ""]
    return exploded.index.to_numpy(dtype=np.int64), exploded


def _pack(
    rows: np.ndarray,
    ids: np.ndarray,
    n_rows: int,
    max_len: int | None,
    keep_last: bool,
    unique: bool,
) -> np.ndarray:
    """Pack (row, id) pairs, grouped by row in order, into a zero-padded [n_rows, max_len] array.

    keep_last: keep each row's last max_len ids, aligned right (sequences, padded on the left);
    otherwise its first max_len ids, aligned left (bags).
    """
    known = ids > 0
    rows, ids = rows[known], ids[known]
    if unique and len(rows):
        first = ~pd.DataFrame({"row": rows, "id": ids}).duplicated().to_numpy()
        rows, ids = rows[first], ids[first]
    counts = np.bincount(rows, minlength=n_rows) if len(rows) else np.zeros(n_rows, np.int64)
    if max_len is None:
        max_len = max(int(counts.max(initial=0)), 1)
    out = np.zeros((n_rows, max_len), dtype=np.int64)
    if not len(rows):
        return out
    starts = np.cumsum(counts) - counts
    position = np.arange(len(rows)) - starts[rows]
    if keep_last:
        row_count = counts[rows]
        kept = position >= row_count - max_len
        slot = max_len - row_count + position
    else:
        kept = position < max_len
        slot = position
    out[rows[kept], slot[kept]] = ids[kept]
    return out


def _hash_words(words: pd.Series, buckets: int) -> np.ndarray:
    """Stable word -> 1..buckets ids (crc32, not Python's salted hash)."""
    unique = pd.unique(words)
    table = {word: zlib.crc32(word.encode()) % buckets + 1 for word in unique}
    return words.map(table).to_numpy(dtype=np.int64)


def encode_column(
    column: Column, table: pd.DataFrame, item_vocabulary: pd.Index
) -> tuple[np.ndarray, Feature]:
    """The encoded values of one column, one row per row of `table`, and its declaration."""
    values = table[column.name]
    n = len(table)
    if column.kind == "categorical":
        ids, vocabulary = encode_ids(values, column.categories)
        return ids, Feature(column.name, FeatureKind.CATEGORICAL, len(vocabulary) + 1)
    if column.kind == "numeric":
        numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
        return numbers, Feature(column.name, FeatureKind.NUMERIC)
    rows, tokens = _tokens(values, column)
    if column.kind == "text":
        ids = _hash_words(tokens, column.buckets)
        packed = _pack(rows, ids, n, column.max_len, keep_last=False, unique=True)
        feature = Feature(column.name, FeatureKind.MULTI_HOT, column.buckets + 1, packed.shape[1])
        return packed, feature
    if column.kind == "sequence" and column.item_vocabulary:
        ids = item_vocabulary.astype(str).get_indexer(tokens).astype(np.int64) + 1
        packed = _pack(rows, ids, n, column.max_len, keep_last=True, unique=False)
        feature = Feature(
            column.name,
            FeatureKind.SEQUENCE,
            len(item_vocabulary) + 1,
            packed.shape[1],
            shares_embedding_with="item_id",
        )
        return packed, feature
    codes, vocabulary = pd.factorize(tokens, sort=True)
    ids = codes.astype(np.int64) + 1
    if column.kind == "sequence":
        packed = _pack(rows, ids, n, column.max_len, keep_last=True, unique=False)
        return packed, Feature(
            column.name, FeatureKind.SEQUENCE, len(vocabulary) + 1, packed.shape[1]
        )
    packed = _pack(rows, ids, n, column.max_len, keep_last=False, unique=True)
    return packed, Feature(column.name, FeatureKind.MULTI_HOT, len(vocabulary) + 1, packed.shape[1])


def _gather(encoded: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Rows of a side table's encoding for each event; position -1 (unknown key) -> 0 / NaN."""
    blank = np.full((1, *encoded.shape[1:]), np.nan if encoded.dtype.kind == "f" else 0)
    return np.concatenate([encoded, blank.astype(encoded.dtype)])[positions]


def encode_features(data: Interactions) -> tuple[dict[str, np.ndarray], list[Feature]]:
    """Every feature column of the CTR task, one row per event in file order."""
    events = data.events
    user_ids, user_vocabulary = encode_ids(events["user_id"])
    item_ids, item_vocabulary = encode_ids(events["item_id"])
    columns = {"user_id": user_ids, "item_id": item_ids}
    features = [
        Feature("user_id", FeatureKind.CATEGORICAL, len(user_vocabulary) + 1),
        Feature("item_id", FeatureKind.CATEGORICAL, len(item_vocabulary) + 1),
    ]
    sides: dict[str, tuple[pd.DataFrame, str | None]] = {"event": (events, None)}
    positions: dict[str, np.ndarray] = {}
    for side, table, key in (("user", data.users, "user_id"), ("item", data.items, "item_id")):
        if table is not None:
            table = table[~table.index.duplicated()]  # the first row of a repeated id wins
            sides[side] = (table, key)
            positions[key] = table.index.get_indexer(events[key])
    for column in data.columns:
        if column.side not in sides:
            raise ValueError(f"column '{column.name}' lives in the {column.side} table, not given")
        table, key = sides[column.side]
        encoded, feature = encode_column(column, table, item_vocabulary)
        if key is not None:
            encoded = _gather(encoded, positions[key])
        columns[column.name] = encoded
        features.append(feature)
    if data.history:
        timestamps = events["timestamp"].to_numpy()
        columns[HISTORY] = history_matrix(user_ids, item_ids, timestamps, data.history)
        features.append(
            Feature(
                HISTORY,
                FeatureKind.SEQUENCE,
                len(item_vocabulary) + 1,
                data.history,
                shares_embedding_with="item_id",
            )
        )
    return columns, features


def standardise(values: np.ndarray, train_rows: np.ndarray) -> np.ndarray:
    """(x - mean) / std over the training rows; missing values become 0."""
    train = values[train_rows]
    train = train[~np.isnan(train)]
    mean = float(train.mean()) if len(train) else 0.0
    std = float(train.std()) if len(train) else 1.0
    scaled = (values - mean) / (std if std > 0 else 1.0)
    return np.nan_to_num(scaled, nan=0.0).astype(np.float32)


def make_ctr(
    dataset: str,
    columns: dict[str, np.ndarray],
    features: list[Feature],
    label: np.ndarray,
    indices: tuple[np.ndarray, np.ndarray, np.ndarray],
    protocol: dict[str, Any],
    timestamps: np.ndarray | None = None,
) -> CTRData:
    """Cut encoded columns into the three splits, standardise numerics, hash the assignment.

    `timestamps` (one per row, file order) ride along as each split's `timestamp`; they are no
    feature and not part of the hash, which covers the assignment alone."""
    numeric = {f.name for f in features if f.kind == FeatureKind.NUMERIC}
    columns = {
        name: standardise(values, indices[0]) if name in numeric else values
        for name, values in columns.items()
    }
    label = np.asarray(label, dtype=np.float32)

    def cut(rows: np.ndarray) -> TensorSplit:
        return TensorSplit(
            {name: torch.from_numpy(np.ascontiguousarray(v[rows])) for name, v in columns.items()},
            torch.from_numpy(label[rows]),
            None if timestamps is None else torch.from_numpy(np.asarray(timestamps)[rows]),
        )

    train, valid, test = (cut(rows) for rows in indices)
    digest = split_hash(protocol, *(rows.astype(np.int64) for rows in indices))
    return CTRData(dataset, features, train, valid, test, protocol, digest)


def build_ctr(data: Interactions, split: str = "user_time") -> CTRData:
    """The CTR task of an event log under a chronological split (see the module docstring)."""
    if split not in CTR_SPLITS:
        raise ConfigError(f"unknown ctr split '{split}'; known: {', '.join(CTR_SPLITS)}")
    if not data.has_label:
        raise ConfigError(f"dataset '{data.dataset}' has no label or rating, so no ctr task")
    columns, features = encode_features(data)
    timestamps = data.events["timestamp"].to_numpy()
    assignment = assign_splits(columns["user_id"], timestamps, split)
    indices = tuple(np.flatnonzero(assignment == k) for k in range(3))
    protocol = {
        "dataset": data.dataset,
        "task": "ctr",
        "name": split,
        "fractions": list(FRACTIONS),
        "ordering": ("per user, " if split == "user_time" else "all rows, ") + ORDERING,
        "rounding": "n_train = floor(0.8 n), n_train + n_valid = floor(0.9 n), rest test"
        + (" (n = the user's rows)" if split == "user_time" else " (n = all rows)"),
        "label": data.label_rule,
        "history": (
            {
                "feature": HISTORY,
                "max_len": data.history,
                "rule": "the user's items strictly before the event in the user's "
                "chronological order, over all splits",
            }
            if data.history
            else None
        ),
        "vocabulary": VOCABULARY,
        "numeric": "standardised with the train split's mean and std; missing -> 0",
        "rows": [len(rows) for rows in indices],
    }
    return make_ctr(
        data.dataset, columns, features, data.events["label"].to_numpy(), indices, protocol,
        timestamps,
    )


def build_sequential(data: Interactions, max_len: int = 50) -> SequentialData:
    """Per-user chronological leave-one-out (see `SequentialData`)."""
    if max_len < 1:
        raise ConfigError(f"sequential max_len must be at least 1, got {max_len}")
    events = data.events
    user_codes, user_vocabulary = encode_ids(events["user_id"])
    item_ids, item_vocabulary = encode_ids(events["item_id"])
    order = chronological_order(user_codes, events["timestamp"].to_numpy())
    users, items = user_codes[order], item_ids[order]
    starts = (
        np.flatnonzero(np.r_[True, users[1:] != users[:-1]]) if len(users) else np.zeros(0, int)
    )
    ends = np.r_[starts[1:], len(users)]
    kept = (ends - starts) >= 3
    sequences = [items[start:end] for start, end in zip(starts[kept], ends[kept])]
    protocol = {
        "dataset": data.dataset,
        "task": "sequential",
        "name": "leave_one_out",
        "ordering": "per user, " + ORDERING,
        "targets": "last item -> test, second-to-last -> valid; train = the items before",
        "max_len": max_len,
        "min_interactions": 3,
        "users": len(sequences),
        "excluded_users": int((~kept).sum()),
        "seen": "all of the user's items before the target, deduplicated",
        "item_ids": "1..num_items in sorted raw-id order; 0 pads",
    }
    lengths = np.array([len(s) for s in sequences], dtype=np.int64)
    flat = np.concatenate(sequences) if sequences else np.zeros(0, np.int64)
    digest = split_hash(protocol, users[starts[kept]], lengths, flat)

    def seen(prefixes: list[np.ndarray]) -> list[torch.Tensor]:
        return [torch.from_numpy(np.unique(prefix)) for prefix in prefixes]

    valid_prefix = [s[:-2] for s in sequences]
    test_prefix = [s[:-1] for s in sequences]
    return SequentialData(
        dataset=data.dataset,
        num_items=len(item_vocabulary),
        max_len=max_len,
        train=[torch.from_numpy(prefix.copy()) for prefix in valid_prefix],
        valid_history=pad_left(valid_prefix, max_len),
        valid_target=torch.from_numpy(np.array([s[-2] for s in sequences], dtype=np.int64)),
        valid_seen=seen(valid_prefix),
        test_history=pad_left(test_prefix, max_len),
        test_target=torch.from_numpy(np.array([s[-1] for s in sequences], dtype=np.int64)),
        test_seen=seen(test_prefix),
        protocol=protocol,
        split_hash=digest,
        # Groups of each row's user and item genres, for the beyond-accuracy metrics.
        **sequential_side_info(data, user_vocabulary[users[starts[kept]] - 1], item_vocabulary),
    )


# ---------------------------------------------------------------------------------------------
# Per-process cache and the event-log dataset base


_CACHE: collections.OrderedDict[Hashable, Any] = collections.OrderedDict()
_CACHE_SIZE = 8
_LOCK = threading.RLock()


def cached(key: Hashable, build: Callable[[], Any]) -> Any:
    """`build()` once per key per process (least recently used of `_CACHE_SIZE` kept)."""
    with _LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
        value = build()
        _CACHE[key] = value
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
        return value


def clear_cache() -> None:
    with _LOCK:
        _CACHE.clear()


class EventLogDataset(Dataset):
    """A dataset whose tasks come from one `Interactions` through the shared builders.

    Subclasses read their raw files in `load()` and say in `source_key()` what identifies them;
    tasks are built once per process for each key and options.
    """

    ctr_splits: ClassVar[tuple[str, ...]] = CTR_SPLITS

    @abc.abstractmethod
    def source_key(self) -> tuple[Hashable, ...]:
        """Equal keys mean equal raw data (e.g. name, path, modification time)."""

    @abc.abstractmethod
    def load(self) -> Interactions:
        """Read the raw files; called once per process and key."""

    @abc.abstractmethod
    def source(self) -> str:
        """Where the data comes from, for `info()`."""

    def interactions(self) -> Interactions:
        return cached((*self.source_key(), "interactions"), self.load)

    def ctr(self, split: str = "user_time") -> CTRData:
        if "ctr" not in self.tasks:
            return super().ctr(split)
        return cached(
            (*self.source_key(), "ctr", split), lambda: build_ctr(self.interactions(), split)
        )

    def sequential(self, max_len: int = 50) -> SequentialData:
        return cached(
            (*self.source_key(), "sequential", max_len),
            lambda: build_sequential(self.interactions(), max_len),
        )

    def info(self) -> dict[str, Any]:
        data = self.interactions()
        return {
            "name": self.name,
            "description": self.description,
            "source": self.source(),
            **data.summary(),
            "features": data.feature_kinds() if "ctr" in self.tasks else {},
            "tasks": list(self.tasks),
            "ctr_splits": list(self.ctr_splits) if "ctr" in self.tasks else [],
        }
