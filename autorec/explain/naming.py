"""Naming SAE latents by what the sequences that activate them have in common.

A sequence is described by its recent items (the last `window` items the model read): the share
of them that carry each label, where a label is a genre (ML-100K's 19) or, for a dataset without
genres, an item's own title. A latent is named by construct-then-validate, the statistical
counterpart of RecSAE's LLM-based procedure:

1. its top activating sequences are split in two halves by alternating rank;
2. construct: the name is the label (or two) whose share is most raised on the first half over
   all sequences; a second label joins when it is raised at least half as much;
3. validate: confidence is the AUROC with which the name's share separates the second half
   (which the name never saw) from sequences where the latent is silent: 1.0 means the name
   predicts activation perfectly, 0.5 no better than chance.

So a latent that fires on Horror-heavy sequences is named "Horror" with a confidence near 1,
while a latent whose first-half enrichment was luck scores near 0.5 on the second half.
"""

from __future__ import annotations

import dataclasses
from itertools import combinations

import numpy as np
import torch

from autorec.data.catalog import ItemCatalog
from autorec.explain.errors import ExplainError
from autorec.metrics import auc


@dataclasses.dataclass(frozen=True)
class Labels:
    """What latents are named by: `item_labels[item, label]` says which labels an item carries
    (rows by item id, row 0 padding); `titles` name items for the top-titles column."""

    kind: str  # "genre" or "title"
    names: tuple[str, ...]
    item_labels: torch.Tensor | None  # bool [num_items + 1, labels]; None: a label is an item
    titles: tuple[str, ...]

    def item_to_label(self, item_shares: torch.Tensor) -> torch.Tensor:
        """Per-item shares [..., num_items + 1] as per-label shares [..., labels]."""
        return item_shares if self.item_labels is None else item_shares @ self.item_labels.float()

    def title(self, item: int) -> str:
        return self.titles[item] if 0 <= item < len(self.titles) and self.titles[item] else f"item {item}"


def catalog_labels(catalog: ItemCatalog, num_items: int) -> Labels:
    """Genres where the catalog has them, else titles; a clear error when it has neither."""
    if catalog.num_items and catalog.num_items != num_items + 1:
        raise ExplainError(
            f"dataset '{catalog.dataset}': the item catalog holds {catalog.num_items - 1} items "
            f"but the model ranks {num_items}; they do not describe the same items"
        )
    titles = tuple(catalog.values.get("title", ()))
    if "genres" in catalog.fields:
        genre_lists = [[g.strip() for g in value.split(",") if g.strip()]
                       for value in catalog.values["genres"]]
        names = tuple(sorted({g for genres in genre_lists for g in genres} - {"unknown"}))
        if names:
            column = {name: i for i, name in enumerate(names)}
            matrix = torch.zeros(num_items + 1, len(names), dtype=torch.bool)
            for item, genres in enumerate(genre_lists):
                for genre in genres:
                    if genre in column:
                        matrix[item, column[genre]] = True
            return Labels("genre", names, matrix, titles or tuple(f"item {i}" for i in range(num_items + 1)))
    if titles:
        return Labels("title", titles, None, titles)
    raise ExplainError(
        f"dataset '{catalog.dataset}' has neither item genres nor titles to name latents by "
        "(a csv/parquet schema can declare `title` or `genres` columns with `type: text`)"
    )


def item_shares(recent: torch.Tensor, num_items: int) -> torch.Tensor:
    """[num_items + 1]: the mean over rows of each item's share of the row's recent items."""
    real = recent != 0
    weight = real.float() / real.sum(dim=1, keepdim=True).clamp(min=1)
    shares = torch.zeros(num_items + 1).index_add_(0, recent.flatten(), weight.flatten())
    return shares / max(len(recent), 1)


def label_share(recent: torch.Tensor, labels: Labels, chosen: list[int]) -> torch.Tensor:
    """[rows]: the share of each row's recent items that carry any of the `chosen` labels."""
    real = recent != 0
    if labels.item_labels is None:
        hit = torch.isin(recent, torch.tensor(chosen)) & real
    else:
        hit = labels.item_labels[recent][..., chosen].any(dim=-1) & real
    return hit.float().sum(dim=1) / real.sum(dim=1).clamp(min=1)


@dataclasses.dataclass
class NamedLatent:
    latent: int
    name: str
    labels: list[str]
    confidence: float  # held-out AUROC of the name's share: activating vs silent sequences
    frequency: float  # fraction of all sequences on which the latent fires
    top_share: float  # the name's share of recent items among the held-out top sequences
    base_share: float  # ... and among all sequences
    top_titles: list[str]


def name_latents(
    codes: torch.Tensor,
    recent: torch.Tensor,
    labels: Labels,
    *,
    top: int = 100,
    min_active: int = 20,
    seed: int = 0,
) -> list[NamedLatent]:
    """Every latent that fires on at least `min_active` sequences, named and scored, most
    confident first. codes [N, latents] SAE activations; recent [N, W] item ids (0 pads)."""
    num_items = len(labels.titles) - 1 if labels.titles else int(recent.max())
    base_items = item_shares(recent, num_items)
    base = labels.item_to_label(base_items)
    rng = np.random.default_rng(seed)
    base_shares: dict[tuple[int, ...], float] = {}  # per name: its share over all sequences
    named = []
    for latent in range(codes.shape[1]):
        activation = codes[:, latent]
        active = int((activation > 0).sum())
        if active < min_active:
            continue
        order = torch.argsort(activation, descending=True)[: min(top, active)]
        construct, validate = order[0::2], order[1::2]
        silent = torch.nonzero(activation <= 0).squeeze(1).numpy()
        if len(silent) < 2:
            continue  # the latent fires (almost) everywhere: nothing to contrast it with
        sample = rng.choice(silent, min(len(silent), 2 * max(4 * len(validate), 500)), replace=False)
        construct_silent, validate_silent = sample[0::2], sample[1::2]
        gain = labels.item_to_label(item_shares(recent[construct], num_items)) - base
        shortlist = [int(i) for i in torch.argsort(gain, descending=True)[:3] if gain[i] > 0]
        if not shortlist:
            continue
        # Construct: the single label or pair of the shortlist whose share best separates the
        # first half from silent sequences (a pair must do strictly better than its parts).
        options = [[i] for i in shortlist] + [list(pair) for pair in combinations(shortlist, 2)]
        chosen = max(options, key=lambda labels_: (
            _separation(recent, labels, labels_, construct, construct_silent), -len(labels_)))
        # Validate: on the second half, which the name was not built from.
        confidence = _separation(recent, labels, chosen, validate, validate_silent)
        positive_share = label_share(recent[validate], labels, chosen)
        item_gain = item_shares(recent[order], num_items) - base_items
        item_gain[0] = 0.0
        titles = [labels.title(int(i)) for i in torch.argsort(item_gain, descending=True)[:3]
                  if item_gain[i] > 0]
        names = [labels.names[i] for i in chosen]
        key = tuple(chosen)
        if key not in base_shares:
            base_shares[key] = float(label_share(recent, labels, chosen).mean())
        named.append(NamedLatent(
            latent=latent, name=" + ".join(names), labels=names, confidence=confidence,
            frequency=active / len(codes), top_share=float(positive_share.mean()),
            base_share=base_shares[key], top_titles=titles,
        ))
    named.sort(key=lambda n: (-n.confidence, n.latent))
    return named


def _separation(recent: torch.Tensor, labels: Labels, chosen: list[int], active: torch.Tensor,
                silent: np.ndarray) -> float:
    """AUROC of the `chosen` labels' share: sequences `active` (positives) against `silent`."""
    positive = label_share(recent[active], labels, chosen)
    negative = label_share(recent[torch.from_numpy(silent)], labels, chosen)
    truth = torch.cat([torch.ones(len(positive)), torch.zeros(len(negative))])
    return auc(torch.cat([positive, negative]), truth)
