"""`llm_ranker`: a small causal LM as a CTR model, TALLRec style.

Each row becomes a chat: the instruction as the system turn, the rendered template (the user's
history, the target item, the answer words) as the user turn, then the assistant turn opens.
The row's logit is logit(yes) - logit(no) of the first answer token there, so sigmoid(logit) is
P(yes) against P(no). Zero-shot by default; with `lora_steps > 0`, `prepare` tunes LoRA adapters
(peft) on k = `lora_pairs` seeded training rows with BCE on that logit.

Only the adapters are parameters of this module (the frozen LM lives outside the module tree),
so a zero-shot ranker has 0 parameters and the trainer's Adam loop never runs (trainable=False):
all training happens in `prepare`. The shared LM from autorec.lm is never modified: LoRA works
on a private copy.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from typing import Any, ClassVar

import torch
from torch import nn

from autorec.data.features import CTRData, Feature
from autorec import lm as lm_cache
from autorec.errors import ConfigError, DatasetError, TrainingError
from autorec.models.base import CTRModel
from autorec.models.ctr.layers import coerce_config, require_features
from autorec.models.llm_ranker import history as hist
from autorec.models.llm_ranker import template as tpl
from autorec.models.llm_ranker.config import LLMRankerConfig

HISTORY = "hist_items"


@dataclasses.dataclass
class _Backend:
    """What `prepare` builds; kept outside the module tree so it is neither a parameter nor
    part of the state dict."""

    lm: Any  # the causal LM that scores: the shared one, or a private LoRA copy
    tokenizer: Any
    catalog: Any
    fields: tuple[str, ...]
    labels: hist.LabelLookup
    similarity: Any
    yes_id: int
    no_id: int
    pad_id: int
    item_text: dict[int, str] = dataclasses.field(default_factory=dict)


class LLMRanker(CTRModel):
    name: ClassVar[str] = "llm_ranker"
    Config: ClassVar[type[LLMRankerConfig]] = LLMRankerConfig
    trainable: ClassVar[bool] = False  # LoRA trains in prepare(); nothing for the trainer's Adam

    def __init__(self, features: list[Feature], config: LLMRankerConfig | dict | None = None):
        config = coerce_config(LLMRankerConfig, config)
        require_features(self.name, features)
        super().__init__(features, config)
        names = {feature.name for feature in features}
        if "item_id" not in names:
            raise ConfigError("model 'llm_ranker' needs the item_id feature")
        if config.history_length > 0 and not {"user_id", HISTORY} <= names:
            raise ConfigError(
                "model 'llm_ranker' shows the user's history, which needs the user_id and "
                f"{HISTORY} features (a csv schema gets {HISTORY} with `history: N`); "
                "or set history_length=0"
            )
        self.template = tpl.parse(config.template)
        self.yes_word, self.no_word = tpl.ANSWERS[config.answer]
        # Tells forward() where the trainer moved the module (it has no other tensors).
        self.register_buffer("_device_probe", torch.zeros(0), persistent=False)
        self.adapter = nn.ParameterList()  # the LoRA weights, once tuned: the only parameters
        self.backend: _Backend | None = None
        self.lora_losses: list[float] = []
        self.lora_seconds = 0.0
        self.prompt_tokens: list[int] = []  # per row of the last forward

    # -- preparation -----------------------------------------------------------------------

    def prepare(self, data: CTRData) -> None:
        from autorec.data.catalog import catalog_for_label
        from autorec.lm import LMError, load_causal_lm

        config = self.config
        catalog = catalog_for_label(data.dataset)
        if not catalog.fields:
            raise DatasetError(
                f"dataset '{data.dataset}' has no item text, which llm_ranker needs (declare "
                "`type: text` columns in a csv/parquet schema)"
            )
        fields = tuple(config.fields or catalog.fields)
        catalog.require(fields)
        try:
            loaded = load_causal_lm(config.lm)
        except LMError as err:
            raise ConfigError(str(err)) from None
        tokenizer = loaded.tokenizer
        yes_id, no_id = (_first_token(tokenizer, word) for word in (self.yes_word, self.no_word))
        if yes_id == no_id:
            raise ConfigError(f"answer words {config.answer} start with the same token")
        similarity = None
        if config.history_selection == "similar" and config.history_length > 0:
            if config.similarity == "text":
                from autorec.models.llm_ranker.encoder import item_embeddings

                similarity = hist.TextSimilarity(item_embeddings(catalog, catalog.fields))
            else:
                similarity = hist.CooccurrenceSimilarity(data)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.backend = _Backend(
            lm=loaded.model, tokenizer=tokenizer, catalog=catalog, fields=fields,
            labels=hist.LabelLookup(data), similarity=similarity, yes_id=yes_id, no_id=no_id,
            pad_id=int(pad or 0),
        )  # fmt: skip
        if config.lora_steps > 0:
            self._tune_lora(data)

    def train_rows(self, data: CTRData) -> torch.Tensor:
        """The k training rows LoRA learns from: a seeded sample of the training split."""
        generator = torch.Generator().manual_seed(self.config.lora_seed)
        k = min(self.config.lora_pairs, len(data.train))
        return torch.randperm(len(data.train), generator=generator)[:k]

    def _tune_lora(self, data: CTRData) -> None:
        import peft

        config, backend = self.config, self.backend
        rows = self.train_rows(data)
        if len(rows) == 0:
            raise TrainingError(f"{data.dataset}: the training split is empty")
        prompts = self.prompt_ids(data.train.batch(rows))
        labels = data.train.label[rows].float()
        device = _default_device()
        torch.manual_seed(config.lora_seed)  # LoRA's A matrices start random
        private = copy.deepcopy(backend.lm)  # the shared LM stays as it was loaded
        lora = peft.LoraConfig(
            r=config.lora_rank, lora_alpha=2 * config.lora_rank, lora_dropout=0.0, bias="none"
        )
        tuned = peft.get_peft_model(private, lora).to(device)
        weights = [p for p in tuned.parameters() if p.requires_grad]
        optimiser = torch.optim.AdamW(weights, lr=config.lora_lr, weight_decay=0.0)
        generator = torch.Generator().manual_seed(config.lora_seed)
        order: list[int] = []
        # The shared prefix runs once per step (its KV depends on the adapters, so not once).
        prefix = _common_prefix(prompts)
        start = time.perf_counter()
        tuned.train()
        for step in range(config.lora_steps):
            if len(order) < config.lora_batch_size:
                order += torch.randperm(len(rows), generator=generator).tolist()
            index, order = order[: config.lora_batch_size], order[config.lora_batch_size :]
            cache = _run_prefix(tuned, prefix, device)
            rows_ids = [prompts[i][len(prefix) :] for i in index]
            logits = answer_logits(tuned, rows_ids, backend, device, (len(prefix), cache),
                                   copy_cache=False)
            loss = nn.functional.binary_cross_entropy_with_logits(logits, labels[index].to(device))
            if not torch.isfinite(loss):
                raise TrainingError(f"llm_ranker: LoRA loss became {loss.item()} at step {step}")
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            self.lora_losses.append(float(loss.item()))
        tuned.eval()
        self.lora_seconds = time.perf_counter() - start
        backend.lm = tuned
        self.adapter = nn.ParameterList(weights)

    # -- prompts ---------------------------------------------------------------------------

    def _describe(self, item: int) -> str:
        backend = self.backend
        text = backend.item_text.get(item)
        if text is None:
            text = tpl.describe_item(backend.catalog.record(item, backend.fields))
            backend.item_text[item] = text
        return text

    def render(self, user: int, item: int, pool: list[int]) -> str:
        """The user turn for one row: its history chosen from `pool` (oldest first)."""
        config, backend = self.config, self.backend
        chosen = hist.select(pool, config.history_length, item, backend.similarity)
        labels = [backend.labels.get(user, h) for h in chosen]
        shown = [(h, label) for h, label in zip(chosen, labels) if label is not None]
        values = tpl.history_values([self._describe(h) for h, _ in shown], [y for _, y in shown])
        values.update(target=self._describe(item), yes=self.yes_word, no=self.no_word)
        return self.template.render(values)

    def prompts(self, batch: dict[str, torch.Tensor]) -> list[str]:
        """The full prompt text (chat template applied) of every row of `batch`."""
        if self.backend is None:
            raise TrainingError("llm_ranker: prepare(data) must run before scoring")
        items = batch["item_id"].tolist()
        users = batch["user_id"].tolist() if "user_id" in batch else [0] * len(items)
        pools = batch[HISTORY].tolist() if HISTORY in batch else [[] for _ in items]
        return [
            chat_text(self.backend.tokenizer, self.config.instruction, self.render(u, i, p))
            for u, i, p in zip(users, items, pools)
        ]

    def prompt_ids(self, batch: dict[str, torch.Tensor]) -> list[list[int]]:
        tokenizer, limit = self.backend.tokenizer, self.config.max_prompt_tokens
        ids = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in self.prompts(batch)]
        longest = max((len(row) for row in ids), default=0)
        if longest > limit:
            raise ConfigError(
                f"llm_ranker: a prompt has {longest} tokens, over max_prompt_tokens={limit}; "
                "shorten the template or history_length"
            )
        return ids

    # -- scoring ---------------------------------------------------------------------------

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        device = self._device_probe.device
        ids = self.prompt_ids(batch)
        self.prompt_tokens = [len(row) for row in ids]
        out = torch.empty(len(ids), dtype=torch.float32)
        if not ids:
            return out.to(device)
        lm = self.backend.lm
        if next(lm.parameters()).device != device:
            lm.to(device)
        # The tokens every prompt starts with (the system turn and the template's opening) run
        # once; each batch continues from a copy of their KV cache.
        prefix = _common_prefix(ids)
        # Similar lengths share a batch: less padding.
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        step = self.config.score_batch_size
        with torch.inference_mode():
            cache = self._prefix_cache(prefix, device)
            for begin in range(0, len(order), step):
                chunk = order[begin : begin + step]
                rows = [ids[i][len(prefix) :] for i in chunk]
                logits = answer_logits(lm, rows, self.backend, device, (len(prefix), cache))
                out[torch.tensor(chunk)] = logits.float().cpu()
        return out.to(device)

    def _prefix_cache(self, prefix: list[int], device) -> Any:
        """The LM's KV cache after `prefix`, kept while the prefix and the LM stay the same."""
        key = (id(self.backend.lm), tuple(prefix), str(device))
        if getattr(self, "_cached_prefix", (None,))[0] != key:
            self._cached_prefix = (key, _run_prefix(self.backend.lm, prefix, device))
        return self._cached_prefix[1]


def _run_prefix(lm, prefix: list[int], device) -> Any:
    """The LM's KV cache after the tokens `prefix` (None for no prefix)."""
    if not prefix:
        return None
    output = lm(input_ids=torch.tensor([prefix], device=device), use_cache=True, logits_to_keep=1)
    return lm_cache.returned_cache(output)


def _common_prefix(rows: list[list[int]]) -> list[int]:
    """The longest token prefix all rows share, leaving each row at least one token."""
    first, limit = rows[0], min(len(row) for row in rows) - 1
    length = 0
    while length < limit and all(row[length] == first[length] for row in rows):
        length += 1
    return first[:length]


def chat_text(tokenizer, instruction: str, user_turn: str) -> str:
    """The prompt up to the assistant's first token: the model's chat template when it has one,
    else plain text ending in 'Answer:'."""
    if getattr(tokenizer, "chat_template", None):
        messages = [{"role": "system", "content": instruction},
                    {"role": "user", "content": user_turn}]  # fmt: skip
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return f"{instruction}\n\n{user_turn}\nAnswer:"


def answer_logits(lm, prompts: list[list[int]], backend: _Backend, device,
                  prefix: tuple[int, Any] | None = None, copy_cache: bool = True) -> torch.Tensor:  # fmt: skip
    """logit(yes) - logit(no) at the end of each prompt, in one left-padded forward.

    `prefix` = (length, KV cache) continues every prompt from a shared prefix already run; the
    forward extends the cache it is given, so it works on a copy unless `copy_cache` is False (a
    cache made for this one call, e.g. in training, where it carries gradients)."""
    done, cache = prefix if prefix is not None and prefix[1] is not None else (0, None)
    width = max(len(row) for row in prompts)
    input_ids = torch.full((len(prompts), width), backend.pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), done + width), dtype=torch.long)
    mask[:, :done] = 1
    for row, ids in enumerate(prompts):
        input_ids[row, width - len(ids) :] = torch.tensor(ids)
        mask[row, done + width - len(ids) :] = 1
    # Padding sits between the prefix and each row's own tokens; masked, and positions skip it.
    positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, done:]
    extra: dict[str, Any] = {"use_cache": False}
    if cache is not None:
        if copy_cache:
            cache = copy.deepcopy(cache)
        cache.batch_repeat_interleave(len(prompts))
        extra = {"use_cache": True, lm_cache.cache_argument(lm): cache}
    output = lm(
        input_ids=input_ids.to(device), attention_mask=mask.to(device),
        position_ids=positions.to(device), logits_to_keep=1, **extra,
    )  # fmt: skip
    last = output.logits[:, -1, :]
    return last[:, backend.yes_id] - last[:, backend.no_id]


def _first_token(tokenizer, word: str) -> int:
    ids = tokenizer(word, add_special_tokens=False)["input_ids"]
    if not ids:
        raise ConfigError(f"answer word '{word}' encodes to no token")
    return int(ids[0])


def _default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
