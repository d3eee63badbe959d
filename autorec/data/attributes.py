"""User groups and item genres: the side information beyond-accuracy metrics read.

Recognised by column name, in any dataset (MovieLens' u.user and u.item, or a csv/parquet
schema's features):
- group attributes: categorical columns named in GROUP_ATTRIBUTES (`gender`, `age`), on the
  user side or the event side (then a user's first event's value counts), or, for a CTRData
  built in code, its `user_groups` (attributes kept for evaluation but withheld from the model);
- genres: a multi_hot column named `genres` on the item side or the event side (then an
  item's first event's value counts).

Group and genre ids are the CTR task's own encodings (0 unknown), so both tasks agree. A
dataset without such a column simply has no group or genre information; the metrics that need
it are not computed (autorec.metrics_extra.metric_names says which are).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from autorec.data.features import CTRData, FeatureKind, TensorSplit

GROUP_ATTRIBUTES = ("gender", "age")
GENRES = "genres"
# Where a column must live to describe a user or an item (event columns are read per key).
_SIDE_OF_KEY = {"user_id": "user", "item_id": "item"}


def genre_matrix(item_ids: torch.Tensor, bags: torch.Tensor, num_items: int, num_genres: int):
    """Bool [num_items + 1, num_genres]: item i has genre g (bag ids 1..G; 0 pads)."""
    matrix = torch.zeros(num_items + 1, num_genres + 1, dtype=torch.bool)
    rows = item_ids.long().unsqueeze(1).expand_as(bags)
    matrix[rows.reshape(-1), bags.long().reshape(-1)] = True
    matrix[0] = False
    return matrix[:, 1:]


# ---------------------------------------------------------------------------------------------
# CTR: everything is already a feature column


def ctr_groups(data: CTRData, split: TensorSplit, attribute: str) -> torch.Tensor | None:
    """Group id of every row of `split` (0 unknown), or None if the data has no such attribute."""
    if attribute in data.user_groups:
        return data.user_groups[attribute][split.columns["user_id"].long()]
    if not any(f.name == attribute and f.kind == FeatureKind.CATEGORICAL for f in data.features):
        return None
    return split.columns[attribute].long()


def ctr_item_genres(data: CTRData) -> torch.Tensor | None:
    """Bool [item vocabulary, G] genre matrix of the CTR task's items, or None without genres."""
    genres = next(
        (f for f in data.features if f.name == GENRES and f.kind == FeatureKind.MULTI_HOT), None
    )
    if genres is None:
        return None
    num_items = data.feature("item_id").vocab_size - 1
    splits = (data.train, data.valid, data.test)
    item_ids = torch.cat([s.columns["item_id"] for s in splits])
    bags = torch.cat([s.columns[GENRES] for s in splits])
    return genre_matrix(item_ids, bags, num_items, genres.vocab_size - 1)


def ctr_user_groups(data: CTRData, attribute: str) -> torch.Tensor | None:
    """Group id per user id [user vocabulary] (0 unknown), or None without the attribute."""
    if attribute in data.user_groups:
        return data.user_groups[attribute].long()
    if ctr_groups(data, data.train, attribute) is None:
        return None
    table = torch.zeros(data.feature("user_id").vocab_size, dtype=torch.long)
    for split in (data.train, data.valid, data.test):
        table[split.columns["user_id"].long()] = split.columns[attribute].long()
    table[0] = 0
    return table


# ---------------------------------------------------------------------------------------------
# Sequential: joined from the raw tables when the task is built


def _per_key(data, name: str, kind: str, key: str, keys: pd.Index, item_vocabulary: pd.Index):
    """(encoded values of column `name` for each raw key, its Feature), or None without it."""
    from autorec.data.tasks import _gather, encode_column

    column = next((c for c in data.columns if c.name == name and c.kind == kind), None)
    if column is None:
        return None
    if column.side == _SIDE_OF_KEY[key]:
        table = data.users if key == "user_id" else data.items
        table = table[~table.index.duplicated()]
    elif column.side == "event":
        table = data.events.drop_duplicates(key).set_index(key)
    else:
        return None
    encoded, feature = encode_column(column, table, item_vocabulary)
    return _gather(encoded, table.index.get_indexer(keys)), feature


def sequential_side_info(data, user_ids: np.ndarray, item_vocabulary: pd.Index) -> dict:
    """`user_groups` and `item_genres` for SequentialData, whose rows are the users `user_ids`
    (raw ids) and whose item ids are 1..len(item_vocabulary) in that vocabulary's order."""
    users = pd.Index(user_ids)
    groups = {}
    for attribute in GROUP_ATTRIBUTES:
        found = _per_key(data, attribute, "categorical", "user_id", users, item_vocabulary)
        if found is not None:
            groups[attribute] = torch.from_numpy(found[0].astype(np.int64))
    genres = None
    found = _per_key(data, GENRES, "multi_hot", "item_id", item_vocabulary, item_vocabulary)
    if found is not None:
        bags, feature = found
        bags = np.concatenate([np.zeros((1, bags.shape[1]), np.int64), bags])  # row 0: padding
        ids = torch.arange(len(bags))
        genres = genre_matrix(
            ids, torch.from_numpy(bags), len(item_vocabulary), feature.vocab_size - 1
        )
    return {"user_groups": groups, "item_genres": genres}
