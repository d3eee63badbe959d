"""SRA-CL: SASRec plus a contrastive loss whose positive views swap items for their semantic
neighbours (after "Semantic Retrieval Augmented Contrastive Learning for Sequential
Recommendation", 2025).

Each item's text (title, year, genres from the item catalog) is embedded with the offline MiniLM
encoder; `prepare()` keeps each item's `neighbours` nearest items by cosine similarity. In
training, every input window also gets a positive view in which `substitution_rate` of its items
are replaced by one of their text neighbours, chosen at random. The view's sequence
representation (the last position's hidden state) must find the original window's among the
batch: InfoNCE over cosine similarities at `temperature`, the other windows of the batch as
negatives, both directions. The total loss is SASRec's full-softmax loss plus `cl_weight` times
that InfoNCE term.

Where this departs from the paper on purpose: the paper retrieves neighbours from LLM-written
item and user summaries and adds a second, inter-user contrastive task; here the neighbours come
from the catalog text through MiniLM (no LLM runs at training time) and only the intra-sequence
substitution view is built, which is the part the issue names.
"""

from __future__ import annotations

from typing import ClassVar

import pydantic
import torch
import torch.nn.functional as F

from autorec.data.features import SequentialData
from autorec.errors import DatasetError
from autorec.models.sequential.sasrec import SASRec, SASRecConfig


class SRACLConfig(SASRecConfig):
    cl_weight: float = pydantic.Field(
        0.1, ge=0.0, le=10.0, description="weight of the contrastive loss; 0 trains plain SASRec"
    )
    substitution_rate: float = pydantic.Field(
        0.2, ge=0.0, le=1.0, description="fraction of a window's items swapped for a text neighbour"
    )
    temperature: float = pydantic.Field(
        0.2, gt=0.0, le=10.0, description="InfoNCE temperature on cosine similarities"
    )
    neighbours: int = pydantic.Field(
        10, ge=1, le=200, description="text neighbours kept per item; a swap picks one at random"
    )


def item_text_vectors(data: SequentialData, model: str) -> torch.Tensor:
    """L2-normalised MiniLM vectors of every item's catalog text, [num_items + 1, 384], row 0
    (padding) zero; a DatasetError when the dataset has no item text."""
    from autorec.data.catalog import catalog_for_label
    from autorec.models.llm_ranker.encoder import item_embeddings

    catalog = catalog_for_label(data.dataset)
    if not catalog.fields:
        raise DatasetError(
            f"{model} needs item text, and dataset '{data.dataset}' has none (MovieLens titles, "
            f"or `type: text` columns in a csv/parquet schema)"
        )
    vectors = item_embeddings(catalog, catalog.fields)
    if vectors.shape[0] != data.num_items + 1:
        raise DatasetError(
            f"{model}: the item catalog of '{data.dataset}' has {vectors.shape[0] - 1} items but "
            f"the sequential task has {data.num_items}"
        )
    return vectors


def text_neighbours(vectors: torch.Tensor, count: int) -> torch.Tensor:
    """The `count` most similar other items of each item by cosine, LongTensor [V + 1, count].

    Row 0 (padding) stays 0 and 0 is never a neighbour; with fewer other items than `count` the
    nearest are repeated, so every row holds real items.
    """
    items = vectors.shape[0] - 1
    if items < 2:
        raise DatasetError("text neighbours need at least two items")
    unit = F.normalize(vectors[1:].float(), dim=-1)
    similarity = unit @ unit.T
    similarity.fill_diagonal_(-float("inf"))  # an item is not its own substitute
    kept = min(count, items - 1)
    nearest = similarity.topk(kept, dim=1).indices + 1
    if kept < count:
        nearest = nearest.repeat(1, -(-count // kept))[:, :count]
    return torch.cat([torch.zeros(1, count, dtype=torch.long), nearest])


def substitute(
    inputs: torch.Tensor,
    neighbours: torch.Tensor,
    rate: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """A copy of `inputs` [B, L] in which round(rate * n) of each row's n real items are replaced
    by a random one of their `neighbours`; padding (0) is never touched."""
    real = inputs != 0
    counts = real.sum(dim=1, keepdim=True)
    swaps = torch.round(counts.float() * rate).long()
    # Random ranks among a row's real positions; padding ranks last, so it is never picked.
    noise = torch.rand(inputs.shape, generator=generator, device="cpu").to(inputs.device)
    noise = noise.masked_fill(~real, 2.0)
    ranks = noise.argsort(dim=1).argsort(dim=1)
    chosen = ranks < swaps
    pick = torch.randint(
        neighbours.shape[1], inputs.shape, generator=generator, device="cpu"
    ).to(inputs.device)
    replacement = neighbours[inputs, pick]
    return torch.where(chosen, replacement, inputs)


def info_nce(first: torch.Tensor, second: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric InfoNCE: row i of `first` must pick row i of `second` among all rows, and back."""
    a, b = F.normalize(first, dim=-1), F.normalize(second, dim=-1)
    logits = a @ b.T / temperature
    labels = torch.arange(len(a), device=a.device)
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


class SRACL(SASRec):
    """SASRec with a semantic-substitution contrastive loss; scores exactly as SASRec does."""

    name: ClassVar[str] = "sra_cl"
    Config: ClassVar[type[SRACLConfig]] = SRACLConfig

    def __init__(self, num_items: int, max_len: int, config: SRACLConfig | None = None):
        super().__init__(num_items, max_len, config)
        # Filled by prepare(); kept in the state dict so a saved model can train on.
        self.register_buffer(
            "neighbours", torch.zeros(num_items + 1, self.config.neighbours, dtype=torch.long)
        )

    def prepare(self, data: SequentialData) -> None:
        if self.config.cl_weight > 0:
            self.set_text_vectors(item_text_vectors(data, self.name))

    def set_text_vectors(self, vectors: torch.Tensor) -> None:
        """Item vectors [num_items + 1, D] (row 0 padding) from which neighbours are taken."""
        if vectors.shape[0] != self.num_items + 1:
            raise DatasetError(
                f"{self.name}: {vectors.shape[0]} item vectors for {self.num_items} items + padding"
            )
        self.neighbours.copy_(text_neighbours(vectors, self.config.neighbours))

    def loss(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        c = self.config
        if c.cl_weight == 0:
            return super().loss(inputs, targets)  # the same computation, so SASRec's exact loss
        hidden = self.encode(inputs)
        real = targets != 0
        if not bool(real.any()):
            return hidden.sum() * 0.0
        logits = hidden[real] @ self.item_embedding.weight[1:].T
        recommendation = F.cross_entropy(logits, targets[real] - 1)
        has_items = (inputs != 0).any(dim=1)
        if int(has_items.sum()) < 2:
            return recommendation  # InfoNCE needs at least one in-batch negative
        view = substitute(inputs[has_items], self.neighbours, c.substitution_rate)
        contrastive = info_nce(
            hidden[has_items, -1], self.encode(view)[:, -1], c.temperature
        )
        return recommendation + c.cl_weight * contrastive
