"""Semantic-ID generative retrieval (TIGER, Rajput et al. NeurIPS 2023; GRID, Snap 2025).

Items are named by short code tuples instead of ids: `prepare` embeds each item's catalog text
with MiniLM and quantises the embeddings by residual k-means (rq_kmeans.py) into `levels` codes of
`codebook_size` values plus one disambiguation code, so similar items share prefixes. The model
reads the history as code tokens and generates the next item's tuple one code at a time.

Architecture: an encoder-decoder, as in TIGER, laid out so that one pass trains on every target
of a window (as SASRec does), which a two-core CPU budget needs.
- The encoder is causal over items (SASRec blocks), each item entering as the sum of its code
  embeddings rather than as `levels + 1` separate tokens, so the history stays `max_len` tokens
  long and every position's output is a context for the item after it.
- The decoder generates each target's codes from a BOS token; it attends causally over the codes
  generated so far and cross-attends to the encoder outputs at and before the target's position.
TIGER's own layout (an encoder over the flattened code tokens, a decoder for the last item only)
trains one target per window. A decoder-only model over the flattened code tokens would train
every target too, but over sequences `levels + 1` times longer (attention ~16x the cost at 4
codes per item); here attention spans `max_len` keys and the code tokens only cross-attend.

Code embeddings are tied: the table that embeds code c of level j as an input is the one that
scores it as an output. Every softmax is restricted to the codes that continue a valid tuple (a
prefix trie), in training as in decoding, so the model's sequence probabilities form a proper
distribution over the catalog's items.

Scoring (full ranking, the same protocol as SASRec): beam search over the trie keeps the `beam`
most probable prefixes at each level; the items the final beams reach get their sequence
log-probability, and every other item a value below all of them (the lowest beam score minus
one), so items outside the beam rank after every beam item and a target outside the beam counts
as a miss (the metrics count ties against the target). `beam` must be at least 10, the cutoff of
the suite's metrics. The beam never expands items of the given history: the evaluation removes a
user's earlier items from the candidates, so a beam slot spent on one would be lost. A repeated
item can still be the target (the evaluation keeps a seen target), so the history's items (at
most `max_len`) are scored exactly by teacher forcing instead.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

import pydantic
import torch
import torch.nn.functional as F
from torch import nn

from autorec.data.features import SequentialData
from autorec.errors import ConfigError
from autorec.models.base import SequentialModel
from autorec.models.sequential.layers import (
    TransformerConfig,
    attention_mask,
    check_heads_divide,
    check_item_ids,
    own_config,
)
from autorec.models.sequential.rq_kmeans import residual_kmeans
from autorec.models.sequential.sasrec import SASRecBlock

RANKING_CUTOFF = 10  # the k of hr@k / ndcg@k the sequential evaluation reports


class SemanticIdsConfig(TransformerConfig):
    num_blocks: int = pydantic.Field(
        2, ge=1, le=12, description="encoder blocks, and as many decoder blocks"
    )
    codebook_size: int = pydantic.Field(
        64, ge=2, le=1024, description="codes per residual k-means level"
    )
    levels: int = pydantic.Field(
        3, ge=1, le=6, description="residual k-means levels (tuple depth, before the "
        "disambiguation code)",
    )  # fmt: skip
    beam: int = pydantic.Field(
        50, ge=RANKING_CUTOFF, le=2000, description="beam width of the constrained decoding; "
        "at least the metrics' cutoff (10)",
    )  # fmt: skip
    dropout: float = pydantic.Field(
        0.2, ge=0.0, lt=1.0, description="dropout on embeddings and inside every block"
    )

    @pydantic.model_validator(mode="after")
    def _heads(self) -> SemanticIdsConfig:
        check_heads_divide(self.hidden_dim, self.num_heads)
        return self


@dataclasses.dataclass
class CodeTrie:
    """The valid code tuples as a trie with global node ids (root 0, then level by level).

    `child[node, c]` is the node code c leads to (-1: no item continues that way); `item[node]`
    is the item a leaf names (-1 for inner nodes); `leaves[node]` counts the items below a node;
    `path[item, j]` is the node an item's first j codes reach (j = 0..depth).
    """

    child: torch.Tensor
    item: torch.Tensor
    leaves: torch.Tensor
    path: torch.Tensor

    @classmethod
    def build(cls, codes: torch.Tensor, codebook_size: int) -> CodeTrie:
        """From codes [num_items + 1, depth] (row 0, padding, is ignored)."""
        items = codes[1:]
        count, depth = items.shape
        path = torch.zeros(count, depth + 1, dtype=torch.long)
        offset = 1
        for level in range(1, depth + 1):
            prefixes, inverse = torch.unique(items[:, :level], dim=0, return_inverse=True)
            path[:, level] = offset + inverse
            offset += prefixes.shape[0]
        if torch.unique(path[:, depth]).numel() != count:
            raise ConfigError("semantic IDs: two items share a full code tuple")
        child = torch.full((offset, codebook_size), -1, dtype=torch.long)
        for level in range(depth):
            child[path[:, level], items[:, level]] = path[:, level + 1]
        item = torch.full((offset,), -1, dtype=torch.long)
        item[path[:, depth]] = torch.arange(1, count + 1)
        leaves = torch.zeros(offset, dtype=torch.long).index_add_(
            0, path.flatten(), torch.ones(path.numel(), dtype=torch.long)
        )
        padding_row = torch.zeros(1, depth + 1, dtype=torch.long)
        return cls(child, item, leaves, torch.cat([padding_row, path]))

    def to(self, device: torch.device) -> CodeTrie:
        return CodeTrie(*(t.to(device) for t in dataclasses.astuple(self)))


def _heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """[N, S, d] -> [N, heads, S, d / heads]."""
    n, s, d = x.shape
    return x.view(n, s, num_heads, d // num_heads).transpose(1, 2)


def _merge(x: torch.Tensor) -> torch.Tensor:
    n, h, s, d = x.shape
    return x.transpose(1, 2).reshape(n, s, h * d)


class CodeDecoderBlock(nn.Module):
    """Pre-norm decoder block over groups of code tokens: causal self-attention inside a group,
    cross-attention from every token to the encoder memory, a feed-forward layer."""

    def __init__(self, dim: int, num_heads: int, dropout: float):
        super().__init__()
        self.num_heads, self.dropout = num_heads, dropout
        self.self_norm = nn.LayerNorm(dim)
        self.self_qkv = nn.Linear(dim, 3 * dim)
        self.self_out = nn.Linear(dim, dim)
        self.cross_norm = nn.LayerNorm(dim)
        self.cross_q = nn.Linear(dim, dim)
        self.cross_kv = nn.Linear(dim, 2 * dim)
        self.cross_out = nn.Linear(dim, dim)
        self.feed_forward_norm = nn.LayerNorm(dim)
        self.feed_forward = nn.Sequential(
            nn.Linear(dim, dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(dim, dim)
        )
        self.residual_dropout = nn.Dropout(dropout)

    def forward(
        self, x: torch.Tensor, memory: torch.Tensor, cross_mask: torch.Tensor
    ) -> torch.Tensor:
        """x [B, G, T, d] (G groups of T tokens: a target's codes), memory [B, S, d],
        cross_mask bool [B, 1, G*T or 1, S] (True: may attend)."""
        batch, groups, tokens, dim = x.shape
        p = self.dropout if self.training else 0.0
        q, k, v = (
            _heads(t, self.num_heads)
            for t in self.self_qkv(self.self_norm(x).view(batch * groups, tokens, dim)).chunk(3, -1)
        )
        out = _merge(F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True))
        x = x + self.residual_dropout(self.self_out(out)).view_as(x)
        queries = self.cross_norm(x).view(batch, groups * tokens, dim)
        q = _heads(self.cross_q(queries), self.num_heads)
        k, v = (_heads(t, self.num_heads) for t in self.cross_kv(memory).chunk(2, -1))
        out = _merge(F.scaled_dot_product_attention(q, k, v, attn_mask=cross_mask, dropout_p=p))
        x = x + self.residual_dropout(self.cross_out(out)).view_as(x)
        return x + self.residual_dropout(self.feed_forward(self.feed_forward_norm(x)))


def _reindex_after_load(module: SemanticIds, _incompatible_keys: Any) -> None:
    module._index_codes()


class SemanticIds(SequentialModel):
    """Generates the next item's semantic ID from the history's; ranks by beam search."""

    name: ClassVar[str] = "semantic_ids"
    Config: ClassVar[type[SemanticIdsConfig]] = SemanticIdsConfig
    train_defaults: ClassVar[dict[str, Any]] = {"lr": 3e-3}

    def __init__(self, num_items: int, max_len: int, config: SemanticIdsConfig | None = None):
        config = own_config(SemanticIdsConfig, config)
        super().__init__(num_items, max_len, config)
        dim, size = config.hidden_dim, config.codebook_size
        self.depth = config.levels + 1  # cluster codes, then the disambiguation code
        # Code c of level j is row j * codebook_size + c; row values come from `prepare`.
        self.register_buffer("codes", torch.zeros(num_items + 1, self.depth, dtype=torch.long))
        self.code_embedding = nn.Embedding(self.depth * size, dim)
        self.position_embedding = nn.Embedding(max_len, dim)
        self.level_embedding = nn.Embedding(self.depth, dim)
        self.bos = nn.Parameter(torch.zeros(dim))
        self.embedding_dropout = nn.Dropout(config.dropout)
        self.encoder = nn.ModuleList(
            SASRecBlock(dim, config.num_heads, config.dropout, norm_first=True)
            for _ in range(config.num_blocks)
        )
        self.encoder_norm = nn.LayerNorm(dim)
        self.decoder = nn.ModuleList(
            CodeDecoderBlock(dim, config.num_heads, config.dropout)
            for _ in range(config.num_blocks)
        )
        self.decoder_norm = nn.LayerNorm(dim)
        for table in (self.code_embedding, self.position_embedding, self.level_embedding):
            nn.init.normal_(table.weight, std=1.0 / math.sqrt(dim))
        self.trie: CodeTrie | None = None
        # A state dict loaded into a fresh model brings its codes; rebuild the trie from them.
        self.register_load_state_dict_post_hook(_reindex_after_load)

    # -- semantic IDs ------------------------------------------------------------------------

    def prepare(self, data: SequentialData) -> None:
        """Semantic IDs from the dataset's item text, seeded by the training seed."""
        from autorec.data.catalog import catalog_for_label
        from autorec.models.llm_ranker.encoder import item_embeddings

        catalog = catalog_for_label(data.dataset)
        if not catalog.fields:
            raise ConfigError(
                f"semantic_ids needs item text; dataset '{data.dataset}' has none (MovieLens "
                f"titles, or `type: text` columns of a csv/parquet schema)"
            )
        if catalog.num_items != self.num_items + 1:
            raise ConfigError(
                f"semantic_ids: the catalog of '{data.dataset}' has {catalog.num_items - 1} items "
                f"but the sequential task has {self.num_items}"
            )
        # The trainer seeds torch with the training seed just before building the model.
        self.build_codes(item_embeddings(catalog, catalog.fields)[1:], seed=torch.initial_seed())

    def build_codes(self, vectors: torch.Tensor, seed: int) -> None:
        """Quantise one vector per item (rows = items 1..num_items) into this model's codes."""
        if vectors.shape[0] != self.num_items:
            raise ConfigError(f"expected {self.num_items} item vectors, got {vectors.shape[0]}")
        quantised = residual_kmeans(vectors, self.config.codebook_size, self.config.levels, seed)
        self.set_codes(torch.cat([torch.zeros(1, self.depth, dtype=torch.long), quantised.codes]))

    def set_codes(self, codes: torch.Tensor) -> None:
        """Use `codes` [num_items + 1, levels + 1] (row 0 ignored) as the items' semantic IDs."""
        if tuple(codes.shape) != tuple(self.codes.shape):
            expected, got = tuple(self.codes.shape), tuple(codes.shape)
            raise ConfigError(f"codes must have shape {expected}, got {got}")
        if int(codes.min()) < 0 or int(codes.max()) >= self.config.codebook_size:
            raise ConfigError(f"codes must lie in 0..{self.config.codebook_size - 1}")
        codes = codes.clone()
        codes[0] = 0
        with torch.no_grad():
            self.codes.copy_(codes)
        self._index_codes()

    def _index_codes(self) -> None:
        if bool((self.codes[1:] == 0).all()) and self.num_items > 1:
            self.trie = None  # not prepared yet (all-zero codes cannot be unique)
            return
        trie = CodeTrie.build(self.codes.cpu(), self.config.codebook_size)
        self.trie = trie.to(self.codes.device)

    def _trie(self) -> CodeTrie:
        if self.trie is None:
            raise ConfigError("semantic_ids has no semantic IDs yet: call prepare(data) first")
        if self.trie.child.device != self.codes.device:
            self.trie = self.trie.to(self.codes.device)
        return self.trie

    # -- encoder and decoder -----------------------------------------------------------------

    def item_vectors(self) -> torch.Tensor:
        """Each item's input vector, the sum of its code embeddings: [num_items + 1, d]."""
        offsets = torch.arange(self.depth, device=self.codes.device) * self.config.codebook_size
        return self.code_embedding(self.codes + offsets).sum(dim=1)

    def encode(self, inputs: torch.Tensor) -> torch.Tensor:
        """Causal encoder outputs [B, L, d]; position t sees items 0..t (padding rows zero)."""
        length = check_item_ids(inputs, self.max_len)
        valid = (inputs != 0).unsqueeze(-1)
        positions = torch.arange(length - 1, -1, -1, device=inputs.device)  # newest is 0
        hidden = self.item_vectors()[inputs] * math.sqrt(self.config.hidden_dim)
        hidden = self.embedding_dropout((hidden + self.position_embedding(positions)) * valid)
        mask = attention_mask(inputs)
        for block in self.encoder:
            hidden = block(hidden, mask) * valid
        return self.encoder_norm(hidden) * valid

    def decode(
        self, memory: torch.Tensor, cross_mask: torch.Tensor, prefix: torch.Tensor
    ) -> torch.Tensor:
        """Decoder outputs [B, G, T + 1, d] for code prefixes [B, G, T] (T <= depth - 1); output
        j predicts code j of the tuple."""
        batch, groups, known = prefix.shape
        offsets = torch.arange(known, device=prefix.device) * self.config.codebook_size
        tokens = torch.cat(
            [self.bos.expand(batch, groups, 1, -1), self.code_embedding(prefix + offsets)], dim=2
        )
        tokens = self.embedding_dropout(tokens + self.level_embedding.weight[: known + 1])
        for block in self.decoder:
            tokens = block(tokens, memory, cross_mask)
        return self.decoder_norm(tokens)

    def level_logits(self, hidden: torch.Tensor, level: int) -> torch.Tensor:
        """Scores of level `level`'s codes from decoder outputs [..., d]: [..., codebook_size]."""
        size = self.config.codebook_size
        return hidden @ self.code_embedding.weight[level * size : (level + 1) * size].T

    def tuple_log_probs(self, hidden: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """log P(code j of `items` | its codes before j), each softmax restricted to the codes
        the trie allows after that prefix: [..., depth], from teacher-forced outputs
        [..., depth, d] and item ids [...] (non-zero)."""
        trie = self._trie()
        size = self.config.codebook_size
        allowed = trie.child[trie.path[items][..., :-1]] >= 0  # [..., depth, K]
        weights = self.code_embedding.weight.view(self.depth, size, -1)
        logits = torch.einsum("...jd,jkd->...jk", hidden, weights)
        logp = logits.masked_fill(~allowed, float("-inf")).log_softmax(dim=-1)
        return logp.gather(-1, self.codes[items].unsqueeze(-1)).squeeze(-1)

    # -- the SequentialModel interface -------------------------------------------------------

    def loss(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean negative log-probability of the target's code tuple at every position whose
        target is not padding (teacher forcing: each code conditioned on the true codes before)."""
        memory = self.encode(inputs)
        real = targets != 0
        if not bool(real.any()):
            return memory.sum() * 0.0  # keeps the graph, so a caller's backward() still works
        cross_mask = attention_mask(inputs).repeat_interleave(self.depth, dim=2)
        hidden = self.decode(memory, cross_mask, self.codes[targets][..., :-1])
        return -self.tuple_log_probs(hidden[real], targets[real]).sum(dim=-1).mean()

    @torch.no_grad()
    def item_log_probs(self, history: torch.Tensor) -> torch.Tensor:
        """Exact log P(item | history) of every item by teacher forcing, [B, num_items + 1]
        (column 0: -inf). Costs one decoder pass per (history, item): for tests and small
        catalogs; `score` is the beam search that approximates its top."""
        memory, cross_mask = self._memory(history)
        items = torch.arange(1, self.num_items + 1, device=history.device)
        logp = self._log_probs_of(memory, cross_mask, items.expand(history.shape[0], -1))
        return torch.cat([torch.full_like(logp[:, :1], float("-inf")), logp], dim=1)

    def _memory(self, history: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder memory for predicting the item after the last position, and its key mask."""
        memory = self.encode(history)
        keys = history != 0
        keys[:, -1] = True  # an empty history still has one key (all-masked attention is NaN)
        return memory, keys[:, None, None, :]

    def _log_probs_of(
        self, memory: torch.Tensor, cross_mask: torch.Tensor, items: torch.Tensor
    ) -> torch.Tensor:
        """log P(item) of items [B, G] (0 allowed, its value meaningless) by teacher forcing."""
        hidden = self.decode(memory, cross_mask, self.codes[items][..., :-1])
        return self.tuple_log_probs(hidden, items).sum(dim=-1)

    @torch.no_grad()
    def beam_search(self, history: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The `beam` most probable items not in the history: (items [B, W], log-probs [B, W]),
        best first; a slot no valid tuple fills has item 0 and log-prob -inf."""
        return self._beam(history, *self._memory(history))

    def _beam(
        self, history: torch.Tensor, memory: torch.Tensor, cross_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        trie = self._trie()
        batch, size = history.shape[0], self.config.codebook_size
        # Items left to recommend below each trie node: its leaves minus the history's.
        seen = torch.zeros(batch, self.num_items + 1, dtype=torch.bool, device=history.device)
        seen.scatter_(1, history, True)
        seen[:, 0] = False
        rows, items = seen.nonzero(as_tuple=True)
        nodes = trie.path[items]
        left = trie.leaves.expand(batch, -1).clone()
        left.index_put_(
            (rows.unsqueeze(1).expand_as(nodes), nodes),
            torch.full(nodes.shape, -1, dtype=left.dtype, device=left.device), accumulate=True,
        )  # fmt: skip
        node = torch.zeros(batch, 1, dtype=torch.long, device=history.device)  # the root
        score = torch.zeros(batch, 1, device=history.device)
        prefix = torch.zeros(batch, 1, 0, dtype=torch.long, device=history.device)
        for level in range(self.depth):
            hidden = self.decode(memory, cross_mask, prefix)[:, :, -1]  # [B, W, d]
            children = trie.child[node]  # [B, W, K]
            logits = self.level_logits(hidden, level).masked_fill(children < 0, float("-inf"))
            logp = logits.log_softmax(dim=-1).nan_to_num(nan=float("-inf"))  # dead beams: NaN
            open_ = left.gather(1, children.clamp(min=0).flatten(1)).view_as(children) > 0
            total = (score.unsqueeze(-1) + logp).masked_fill(~open_ | (children < 0), float("-inf"))
            width = min(self.config.beam, total.shape[1] * size)
            score, flat = total.flatten(1).topk(width, dim=1)
            parent, code = flat // size, flat % size
            node = children.flatten(1).gather(1, flat).clamp(min=0)
            prefix = torch.cat(
                [prefix.gather(1, parent.unsqueeze(-1).expand(-1, -1, level)), code.unsqueeze(-1)],
                dim=2,
            )
        found = torch.isfinite(score)
        return torch.where(found, trie.item[node], 0), score

    @torch.no_grad()
    def score(self, history: torch.Tensor) -> torch.Tensor:
        """Sequence log-probabilities of the beam's items and, exactly, of the history's items;
        every other item gets the lowest beam score minus one (see the module docstring)."""
        memory, cross_mask = self._memory(history)
        items, logp = self._beam(history, memory, cross_mask)
        found = torch.isfinite(logp)
        floor = torch.where(found, logp, float("inf")).min(dim=1, keepdim=True).values
        floor = torch.where(torch.isfinite(floor), floor - 1.0, torch.zeros_like(floor))
        out = floor.expand(-1, self.num_items + 1).clone()
        out.scatter_(1, items, torch.where(found, logp, floor))
        seen = self._log_probs_of(memory, cross_mask, history)
        out.scatter_(1, history, torch.where(history != 0, seen, floor))
        out[:, 0] = float("-inf")
        return out
