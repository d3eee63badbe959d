"""Beyond-accuracy metrics: their names, families and where each is defined.

The trainer computes them on the validation and the test split, after training, when the
training setting `extra_metrics` names their family (they are not part of early stopping):

| family | metric | task | needs |
|---|---|---|---|
| diversity | `diversity.genre_coverage`, `diversity.genres_per_list`, `diversity.intra_list` | both | item `genres` |
| diversity | `diversity.catalog_coverage` | both | - |
| fairness | `fairness.auc_gap_gender`, `fairness.auc_gap_age` | ctr | user `gender` / `age` |
| fairness | `fairness.hr_gap_gender`, `fairness.hr_gap_age` | sequential | user `gender` / `age` |
| fairness | `fairness.gender_leakage` | both | user `gender` |
| cold_start | `cold_user.auc`, `cold_user.logloss`, `cold_user.share` | ctr, not under user_time | - |
| cold_start | `cold_item.auc`, `cold_item.logloss`, `cold_item.share` | ctr | - |
| cold_start | `cold_item.hr@10`, `cold_item.ndcg@10`, `cold_item.mrr@10`, `cold_item.share` | sequential | - |

Lists are top-10: a sequential model's 10 best unseen items (after re-ranking, if a re-ranker
is on); a CTR model's 10 best-scored rows of each user in the split. Definitions of the list
metrics: autorec.beyond_accuracy.lists; of the gaps and the leakage probe:
autorec.beyond_accuracy.groups. Cold: a CTR row whose user (item) has no row in the training
split; a sequential target item that appears in no training sequence. Under the user_time
split every validation user has training rows, so the cold-user metrics are not computed
there (use `split=global_time`, where most test rows are cold users). `*.share` is the
fraction of the split's rows (targets) in the subset. A metric whose subset is empty or has a
single label is NaN. Docs: docs/beyond_accuracy.md.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from autorec.data.attributes import GENRES, GROUP_ATTRIBUTES
from autorec.errors import ConfigError

FAMILIES = ("diversity", "fairness", "cold_start")
LEAKAGE_ATTRIBUTE = "gender"
RANKING = ("hr@10", "ndcg@10", "mrr@10")


def family_of(metric: str) -> str | None:
    """'diversity' for `diversity.intra_list` (a `valid_` prefix is ignored); None otherwise."""
    name = metric.removeprefix("valid_")
    if name.startswith(("cold_user.", "cold_item.")):
        return "cold_start"
    head = name.split(".", 1)[0]
    return head if "." in name and head in FAMILIES else None


def families_of(metrics: Iterable[str]) -> list[str]:
    """The families the trainer must compute to emit `metrics`, in FAMILIES order."""
    wanted = {family_of(m) for m in metrics}
    return [f for f in FAMILIES if f in wanted]


def dataset_attributes(dataset_features: Any) -> tuple[set[str], str | None]:
    """(the attribute names a dataset offers, its CTR split name if known) from what a caller has:
    None, a dataset spec ('ml-100k'), a CTRData or SequentialData, or feature names/Features."""
    from autorec.data.features import CTRData, SequentialData

    if dataset_features is None:
        return set(), None
    if isinstance(dataset_features, str):
        from autorec.data import load_dataset

        info = load_dataset(dataset_features).info()
        return set(info.get("features") or {}), None
    if isinstance(dataset_features, CTRData):
        names = {f.name for f in dataset_features.features} | set(dataset_features.user_groups)
        return names, dataset_features.protocol.get("name")
    if isinstance(dataset_features, SequentialData):
        names = set(dataset_features.user_groups)
        if dataset_features.item_genres is not None:
            names.add(GENRES)
        return names, None
    return {getattr(f, "name", f) for f in dataset_features}, None


def metric_names(
    task: str,
    dataset_features: Any = None,
    split: str | None = None,
    families: Iterable[str] = FAMILIES,
) -> list[str]:
    """The beyond-accuracy metrics the trainer emits for `task` on a dataset offering
    `dataset_features` (see `dataset_attributes`), as base names (no `valid_` prefix).

    `split` is the CTR split (read from a CTRData when one is given); under `user_time` the
    cold-user metrics are left out. Attributes the dataset lacks leave their metrics out.
    """
    if task not in ("ctr", "sequential"):
        raise ConfigError(f"unknown task '{task}'; known: ctr, sequential")
    unknown = sorted(set(families) - set(FAMILIES))
    if unknown:
        raise ConfigError(
            f"unknown extra metric family {', '.join(unknown)}; known: {', '.join(FAMILIES)}"
        )
    attributes, data_split = dataset_attributes(dataset_features)
    split = split or data_split
    names: list[str] = []
    if "diversity" in families:
        if GENRES in attributes:
            names += [f"diversity.{m}" for m in ("genre_coverage", "genres_per_list", "intra_list")]
        names.append("diversity.catalog_coverage")
    if "fairness" in families:
        gap = "auc_gap" if task == "ctr" else "hr_gap"
        names += [f"fairness.{gap}_{a}" for a in GROUP_ATTRIBUTES if a in attributes]
        if LEAKAGE_ATTRIBUTE in attributes:
            names.append(f"fairness.{LEAKAGE_ATTRIBUTE}_leakage")
    if "cold_start" in families:
        if task == "ctr":
            subsets = ("cold_item",) if split == "user_time" else ("cold_user", "cold_item")
            names += [f"{s}.{m}" for s in subsets for m in ("auc", "logloss", "share")]
        else:
            names += [f"cold_item.{m}" for m in (*RANKING, "share")]
    return names
