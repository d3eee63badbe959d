"""The beyond-accuracy metrics of one split, from what the trainer's evaluation already has.

`ctr_extras` takes the split's logits; `sequential_extras` the masked score rows' top-10 lists,
the targets' ranks and (for leakage) one representation row per user. Names and definitions:
autorec.metrics_extra.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from autorec.beyond_accuracy import groups as fairness
from autorec.beyond_accuracy import lists as diversity
from autorec.data.attributes import GROUP_ATTRIBUTES, ctr_groups, ctr_item_genres, ctr_user_groups
from autorec.data.features import CTRData, SequentialData
from autorec.metrics import auc, logloss, ranking_metrics
from autorec.metrics_extra import LEAKAGE_ATTRIBUTE

K = 10


def list_metrics(lists: torch.Tensor, item_genres: torch.Tensor | None, num_items: int) -> dict:
    out = {}
    if item_genres is not None:
        out["diversity.genre_coverage"] = diversity.genre_coverage(lists, item_genres)
        out["diversity.genres_per_list"] = diversity.genres_per_list(lists, item_genres)
        out["diversity.intra_list"] = diversity.intra_list_diversity(lists, item_genres)
    out["diversity.catalog_coverage"] = diversity.catalog_coverage(lists, num_items)
    return out


def ctr_user_lists(users: torch.Tensor, items: torch.Tensor, scores: torch.Tensor, k: int = K):
    """[U, k] item ids of each user's k best-scored rows (ties in row order), 0-padded."""
    users, items = users.long().numpy(), items.long().numpy()
    order = np.lexsort((np.arange(len(users)), -scores.double().numpy(), users))
    sorted_users = users[order]
    first = np.r_[True, sorted_users[1:] != sorted_users[:-1]] if len(users) else np.zeros(0, bool)
    starts = np.flatnonzero(first)
    rank = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    keep = rank < k
    lists = np.zeros((len(starts), k), dtype=np.int64)
    lists[np.cumsum(first)[keep] - 1, rank[keep]] = items[order][keep]
    return torch.from_numpy(lists)


def user_table(model: nn.Module) -> nn.Embedding | None:
    """The model's widest `user_id` embedding table: the learned user representation that the
    leakage probe reads and the fairness head acts on (None for models without one)."""
    from autorec.models.embedding import FieldEmbedding

    tables = [
        m.tables["user_id"]
        for m in model.modules()
        if isinstance(m, FieldEmbedding) and "user_id" in m.tables
    ]
    return max(tables, key=lambda t: t.embedding_dim, default=None)


def _subset(name: str, rows: np.ndarray, logits: torch.Tensor, labels: torch.Tensor) -> dict:
    if not rows.any():
        return {f"{name}.auc": float("nan"), f"{name}.logloss": float("nan"), f"{name}.share": 0.0}
    return {
        f"{name}.auc": auc(logits[rows], labels[rows]),
        f"{name}.logloss": logloss(torch.sigmoid(logits[rows].double()), labels[rows]),
        f"{name}.share": float(rows.mean()),
    }


def ctr_extras(
    data: CTRData, split_name: str, logits: torch.Tensor, model: nn.Module, families
) -> dict[str, float]:
    split = getattr(data, split_name)
    out: dict[str, float] = {}
    if "diversity" in families:
        lists = ctr_user_lists(split.columns["user_id"], split.columns["item_id"], logits)
        num_items = data.feature("item_id").vocab_size - 1
        out.update(list_metrics(lists, ctr_item_genres(data), num_items))
    if "fairness" in families:
        scores, labels = logits.double().numpy(), split.label.numpy()
        for attribute in GROUP_ATTRIBUTES:
            groups = ctr_groups(data, split, attribute)
            if groups is not None:
                per_group = fairness.auc_by_group(scores, labels, groups.numpy())
                out[f"fairness.auc_gap_{attribute}"] = fairness.quality_gap(per_group)
        user_groups = ctr_user_groups(data, LEAKAGE_ATTRIBUTE)
        if user_groups is not None:
            # The rows the model learned: users with training rows (the same on both splits).
            users = torch.unique(data.train.columns["user_id"].long())
            table = user_table(model)
            out[f"fairness.{LEAKAGE_ATTRIBUTE}_leakage"] = (
                fairness.probe_leakage(table.weight.detach().cpu()[users], user_groups[users])
                if table is not None
                else float("nan")
            )
    if "cold_start" in families:
        subsets = ("item",) if data.protocol.get("name") == "user_time" else ("user", "item")
        for side in subsets:
            column = f"{side}_id"
            known = torch.zeros(data.feature(column).vocab_size, dtype=torch.bool)
            known[data.train.columns[column].long()] = True
            cold = (~known[split.columns[column].long()]).numpy()
            out.update(_subset(f"cold_{side}", cold, logits, split.label))
    return out


def sequential_extras(
    data: SequentialData,
    split: str,
    lists: torch.Tensor,
    ranks: torch.Tensor,
    representation: torch.Tensor | None,
    families,
) -> dict[str, float]:
    out: dict[str, float] = {}
    if "diversity" in families:
        out.update(list_metrics(lists, data.item_genres, data.num_items))
    if "fairness" in families:
        for attribute in (a for a in GROUP_ATTRIBUTES if a in data.user_groups):
            groups = data.user_groups[attribute]
            per_group = fairness.hit_rate_by_group(ranks.numpy(), groups.numpy(), K)
            out[f"fairness.hr_gap_{attribute}"] = fairness.quality_gap(per_group)
        if LEAKAGE_ATTRIBUTE in data.user_groups and representation is not None:
            groups = data.user_groups[LEAKAGE_ATTRIBUTE]
            out[f"fairness.{LEAKAGE_ATTRIBUTE}_leakage"] = fairness.probe_leakage(
                representation, groups
            )
    if "cold_start" in families:
        trained = torch.zeros(data.num_items + 1, dtype=torch.bool)
        for sequence in data.train:
            trained[sequence.long()] = True
        cold = ~trained[getattr(data, f"{split}_target").long()]
        if cold.any():
            out.update({f"cold_item.{k}": v for k, v in ranking_metrics(ranks[cold], K).items()})
        else:
            out.update({f"cold_item.{m}": float("nan") for m in ("hr@10", "ndcg@10", "mrr@10")})
        out["cold_item.share"] = float(cold.double().mean())
    return out
