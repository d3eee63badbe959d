"""`llm_hybrid`: DeepFM with the llm_ranker's zero-shot score as one more input feature.

In the spirit of the explainable-CTR work's ID-CTR alignment: an ID model that also sees what a
language model reads from the item text and the user's history. Before training, `prepare`
scores rows with an `llm_ranker` (its settings under `llm`; the score is its logit,
logit(yes) - logit(no)) and DeepFM gets two more fields:
- `llm_score` (numeric): that logit, standardised on the scored training rows (0 where absent);
- `llm_scored` (categorical): whether the row has a score, so a row without one gets a learned
  "missing" embedding instead of a fake score.

A 135M LM scores about 10 rows a second on two CPU cores, so ML-100K's 100k rows would take
hours: the LLM scores `llm_train_rows` training rows and `llm_rows` rows of each evaluation
split, drawn by `llm_seed` exactly as the prompt_templates space and benchmarks/llm_ranker.py
draw their evaluation rows (so the hybrid's scored rows are the rows those lines score). Every
other row is "missing". Metrics over a whole split therefore mostly measure DeepFM; the
hybrid's own effect shows on the scored rows (docs/prompts.md). With `llm_rows: null` and
`llm_train_rows: null` every row is scored (a GPU's job). When the LLM is tuned with LoRA, its k
training pairs are left out of the hybrid's scored training rows: their scores were fitted to
their labels and would teach the hybrid to trust the LLM too much.

Scores are cached per process by (dataset, split hash, llm settings, rows), so a search or a
benchmark that trains several hybrids on the same data scores each row once.
"""

from __future__ import annotations

import json
import threading
from typing import Any, ClassVar

import pydantic
import torch

from autorec.data.features import CTRData, Feature, FeatureKind, TensorSplit
from autorec.errors import ConfigError
from autorec.models.base import CTRModel
from autorec.models.ctr.deepfm import DeepFM, DeepFMConfig
from autorec.models.ctr.layers import coerce_config, require_features

SCORE, SCORED = "llm_score", "llm_scored"
HISTORY = "hist_items"
MISSING, PRESENT = 1, 2  # ids of the `llm_scored` field (0 is the padding row)
SPLITS = ("train", "valid", "test")
_CACHE: dict[tuple, dict[str, tuple[torch.Tensor, torch.Tensor]]] = {}
_LOCK = threading.Lock()


class LLMHybridConfig(DeepFMConfig):
    llm: dict[str, Any] = pydantic.Field(
        default_factory=lambda: {"history_length": 5},
        description="llm_ranker settings of the scoring LM (template, history_length, fields, "
        "lora_steps, ...); zero-shot with the default template by default",
    )
    llm_rows: int | None = pydantic.Field(
        200, ge=2, description="validation and test rows the LLM scores each (null: all)"
    )
    llm_train_rows: int | None = pydantic.Field(
        512, ge=2, description="training rows the LLM scores (null: all)"
    )
    llm_seed: int = pydantic.Field(0, ge=0, description="seed of the scored rows' sample")
    llm_batch_rows: int = pydantic.Field(256, ge=1, le=100_000, description="rows per LLM call")

    @pydantic.field_validator("llm")
    @classmethod
    def _llm(cls, settings: dict[str, Any]) -> dict[str, Any]:
        from autorec.models.llm_ranker.evaluate import ranker_config

        ranker_config(settings)  # a bad llm_ranker setting fails here, with its reason
        return settings


class LLMHybrid(CTRModel):
    name: ClassVar[str] = "llm_hybrid"
    Config: ClassVar[type[LLMHybridConfig]] = LLMHybridConfig

    def __init__(self, features: list[Feature], config: LLMHybridConfig | dict | None = None):
        config = coerce_config(LLMHybridConfig, config)
        require_features(self.name, features)
        taken = {SCORE, SCORED} & {f.name for f in features}
        if taken:
            raise ConfigError(f"model 'llm_hybrid' adds the fields {SCORE} and {SCORED}; the "
                              f"dataset already has {', '.join(sorted(taken))}")  # fmt: skip
        super().__init__(features, config)
        extra = [Feature(SCORE, FeatureKind.NUMERIC), Feature(SCORED, FeatureKind.CATEGORICAL, 3)]
        base = config.model_dump(exclude={"llm", "llm_rows", "llm_train_rows", "llm_seed",
                                          "llm_batch_rows"})  # fmt: skip
        self.deepfm = DeepFM([*features, *extra], DeepFMConfig.model_validate(base))
        # (user, item) keys of the scored rows, sorted, and their standardised scores.
        self.register_buffer("_keys", torch.zeros(0, dtype=torch.long), persistent=False)
        self.register_buffer("_scores", torch.zeros(0), persistent=False)
        self._items = 1
        self.scored_rows: dict[str, int] = {}

    def prepare(self, data: CTRData) -> None:
        names = {f.name for f in data.features}
        if not {"user_id", "item_id"} <= names:
            raise ConfigError("model 'llm_hybrid' keys its LLM scores by user_id and item_id "
                              "(and hist_items where the dataset has it)")
        self._items = data.feature("item_id").vocab_size
        scored = llm_scores(data, self.config)
        self.scored_rows = {name: len(rows) for name, (rows, _) in scored.items()}
        keys, scores = [], []
        for name, (rows, logits) in scored.items():
            keys.append(self._key(getattr(data, name).batch(rows)))
            scores.append(logits)
        keys_all, scores_all = torch.cat(keys), torch.cat(scores)
        train_logits = scored["train"][1]
        mean = float(train_logits.mean()) if len(train_logits) else 0.0
        std = float(train_logits.std()) if len(train_logits) > 1 else 1.0
        order = keys_all.argsort()
        self._keys = keys_all[order]
        self._scores = ((scores_all - mean) / max(std, 1e-6))[order].float()

    def _key(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """One int64 per row from what its prompt is made of: user, item and the history pool
        (a user may meet an item twice, with another history). Overflow wraps, as a hash may."""
        key = batch["user_id"].long() * self._items + batch["item_id"].long()
        history = batch.get(HISTORY)
        if history is not None:
            for column in history.long().unbind(-1):
                key = key * 1_000_003 + column
        return key

    def llm_features(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(standardised LLM score, scored flag) of each row; (0, MISSING) for unscored rows."""
        keys = self._key(batch)
        n = len(keys)
        if len(self._keys) == 0:
            return torch.zeros(n, device=keys.device), torch.full_like(keys, MISSING)
        at = torch.searchsorted(self._keys, keys).clamp(max=len(self._keys) - 1)
        found = self._keys[at] == keys
        score = torch.where(found, self._scores[at], torch.zeros((), device=keys.device))
        flag = torch.where(found, torch.full_like(keys, PRESENT), torch.full_like(keys, MISSING))
        return score, flag

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        score, flag = self.llm_features(batch)
        return self.deepfm({**batch, SCORE: score, SCORED: flag})


def scored_rows(data: CTRData, config: LLMHybridConfig) -> dict[str, torch.Tensor]:
    """Which rows of each split the LLM scores: the evaluation-row sample of the
    prompt_templates space (stratified, seeded), without LoRA's training pairs."""
    from autorec.models.llm_ranker import LLMRanker
    from autorec.models.llm_ranker.evaluate import eval_rows, ranker_config

    rows = {}
    for name in SPLITS:
        split: TensorSplit = getattr(data, name)
        limit = config.llm_train_rows if name == "train" else config.llm_rows
        rows[name] = eval_rows(split.label, limit, config.llm_seed)
    ranker_settings = ranker_config(config.llm)
    if ranker_settings.lora_steps > 0:
        tuned_on = LLMRanker(data.features, ranker_settings).train_rows(data)
        rows["train"] = rows["train"][~torch.isin(rows["train"], tuned_on)]
    return rows


def llm_scores(data: CTRData, config: LLMHybridConfig) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{split: (row indices, LLM logits)}, computed once per process for a given key."""
    from autorec.models.llm_ranker import LLMRanker
    from autorec.models.llm_ranker.evaluate import ranker_config

    key = (data.dataset, data.split_hash, json.dumps(config.llm, sort_keys=True, default=str),
           config.llm_rows, config.llm_train_rows, config.llm_seed)  # fmt: skip
    with _LOCK:
        if key in _CACHE:
            return _CACHE[key]
        ranker = LLMRanker(data.features, ranker_config(config.llm))
        ranker.prepare(data)
        out = {}
        step = config.llm_batch_rows
        with torch.inference_mode():
            for name, rows in scored_rows(data, config).items():
                split: TensorSplit = getattr(data, name)
                logits = [ranker(split.batch(rows[b : b + step])).float().cpu()
                          for b in range(0, len(rows), step)]  # fmt: skip
                out[name] = (rows, torch.cat(logits) if logits else torch.zeros(0))
        _CACHE[key] = out
        return out
