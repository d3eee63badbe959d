"""The llm_ranker's settings: the prompt template and its knobs, LoRA, and scoring limits.

Every name here is also a `--set` key of `autorec train --model llm_ranker` (the trainer's own
keys, such as `seed` and `batch_size`, are taken, hence the `lora_` and `score_` prefixes).
"""

from __future__ import annotations

from typing import Literal

import pydantic

from autorec.models.base import CTRModelConfig
from autorec.models.llm_ranker import template as tpl

MAX_HISTORY = 20  # the pool is the dataset's hist_items, 20 on MovieLens


class PromptSettings(pydantic.BaseModel):
    """What a prompt shows: the knobs the `prompt_templates` space searches, LoRA included."""

    model_config = pydantic.ConfigDict(extra="forbid", validate_assignment=True)

    instruction: str = pydantic.Field(
        tpl.DEFAULT_INSTRUCTION, description="the system turn: what the model is asked"
    )
    template: str = pydantic.Field(
        tpl.DEFAULT_TEMPLATE,
        description="the user turn, with placeholders {history} or {liked}/{disliked}, {target}, "
        "{yes}, {no}",
    )
    history_length: int = pydantic.Field(10, ge=0, le=MAX_HISTORY, description="items shown (L)")
    history_selection: Literal["recent", "similar"] = pydantic.Field(
        "recent", description="the L most recent items, or the L most similar to the target"
    )
    similarity: Literal["cooccurrence", "text"] = pydantic.Field(
        "cooccurrence", description="for `similar`: shared training users, or MiniLM text embeddings"
    )
    fields: list[str] | None = pydantic.Field(
        None, description="item text fields shown, first in quotes; None: all the catalog has"
    )
    answer: Literal[tuple(tpl.ANSWERS)] = pydantic.Field(  # type: ignore[valid-type]
        "Yes/No", description="answer words; the score is P(first) vs P(second)"
    )
    lora_steps: int = pydantic.Field(0, ge=0, le=5000, description="LoRA steps; 0 is zero-shot")
    lora_rank: int = pydantic.Field(8, ge=1, le=128)
    lora_lr: float = pydantic.Field(1e-3, gt=0, le=1)
    lora_pairs: int = pydantic.Field(
        64, ge=2, le=100_000, description="k: training rows LoRA learns from (seeded sample)"
    )

    @pydantic.field_validator("instruction")
    @classmethod
    def _instruction(cls, text: str) -> str:
        return tpl.check_instruction(text)

    @pydantic.field_validator("template")
    @classmethod
    def _template(cls, text: str) -> str:
        return tpl.parse(text).text

    @pydantic.field_validator("fields")
    @classmethod
    def _fields(cls, fields: list[str] | None) -> list[str] | None:
        if fields is None:
            return None
        if not fields:
            raise ValueError("fields must name at least one item text field (or be null: all)")
        if len(set(fields)) != len(fields):
            raise ValueError("fields repeats a name")
        return fields


class LLMRankerConfig(PromptSettings, CTRModelConfig):
    lm: str | None = pydantic.Field(
        None, description="the causal LM: None for the packaged SmolLM2-135M-Instruct, a .gguf "
        "file, or a Hugging Face causal-LM folder",
    )
    lora_batch_size: int = pydantic.Field(4, ge=1, le=256)
    lora_seed: int = pydantic.Field(0, ge=0, description="seeds the k-pair sample and LoRA init")
    score_batch_size: int = pydantic.Field(16, ge=1, le=4096, description="prompts per forward")
    max_prompt_tokens: int = pydantic.Field(
        1024, ge=32, le=131072, description="a longer prompt is an error, never cut silently"
    )
