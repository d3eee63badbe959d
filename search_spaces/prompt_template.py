"""`prompt_templates`: the prompt of the `llm_ranker`, searched like any other model's knobs.

A candidate is the instruction text, the template text (the user turn, with placeholders) and
the structured knobs: history length and selection, similarity, item fields shown, answer
words, and zero-shot or LoRA (steps, rank, learning rate, k training pairs). TPE and mutation
draw the knobs and choose among preset layouts; the LLM agent can write new instruction and
template text, which the Candidate schema checks (known placeholders only, required ones
present, bounded length, no chat control tokens; see autorec.models.llm_ranker.template).

Each candidate scores `max_eval_rows` validation and test rows drawn by `eval_seed` alone, so
every candidate of a run sees the same rows. Selection: `valid_auc` (max) and `prompt_tokens`
per prediction (min, small weight); test `auc` and `logloss` are only reported.
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar, Literal

import optuna
import pydantic

from autorec.errors import ConfigError
from autorec.models.llm_ranker import template as tpl
from autorec.models.llm_ranker.config import PromptSettings
from autorec.models.llm_ranker.evaluate import DEFAULT_EVAL_SEED, DEFAULT_MAX_EVAL_ROWS
from autorec.search_spaces.trained import TrainedModelSpace
from autorec.space import Objective, Report, SpaceOptions, SuiteMember

MODEL = "llm_ranker"
INSTRUCTIONS = {
    "recommender": tpl.DEFAULT_INSTRUCTION,
    "critic": (
        "You are a film critic who knows this viewer's taste. Judge from the viewer's past "
        "ratings whether they will enjoy the target movie. Reply with one word."
    ),
    "terse": "Predict whether the user will like the target movie. Reply with one word.",
}
LORA_PAIRS = (16, 64, 256)
LORA_RANKS = (4, 8, 16)
DEFAULT_HISTORY_MAX = 10
DEFAULT_LORA_STEPS_MAX = 64

SETTINGS_KEYS = {
    "max_eval_rows": f"validation and test rows scored per candidate (default {DEFAULT_MAX_EVAL_ROWS})",
    "eval_seed": f"seed of the row sample, the same for every candidate (default {DEFAULT_EVAL_SEED})",
    "history_max": f"largest history length L a candidate may ask for (default {DEFAULT_HISTORY_MAX})",
    "lora_steps_max": f"most LoRA steps a candidate may ask for (default {DEFAULT_LORA_STEPS_MAX})",
    "lm": "the causal LM: a .gguf file or Hugging Face folder (default: packaged SmolLM2-135M)",
    "score_batch_size": "prompts per forward pass (default 16)",
    "lora_batch_size": "prompts per LoRA step (default 4)",
    "max_prompt_tokens": "longest prompt allowed (default 1024)",
    "threads": "torch threads per evaluation (default: torch's own)",
    "split": "CTR split of the dataset, e.g. user_time or global_time (default: the dataset's)",
}
RUN_KEYS = ("lm", "score_batch_size", "lora_batch_size", "max_prompt_tokens")


class PromptCandidate(PromptSettings):
    """Base of the per-dataset Candidates (their `fields` choices are the catalog's)."""

    model_config = pydantic.ConfigDict(extra="forbid")
    build_key: ClassVar[tuple] = ()

    def __reduce__(self):
        # Candidate classes are built at run time; rebuild the class wherever this is unpickled.
        return (_restore_candidate, (self.build_key, self.model_dump()))


def _restore_candidate(key: tuple, values: dict[str, Any]) -> PromptCandidate:
    return candidate_class(*key).model_validate(values)


@functools.lru_cache(maxsize=None)
def candidate_class(fields: tuple[str, ...], history_max: int, lora_steps_max: int):
    """The Candidate schema for a catalog's fields and the run's bounds."""
    Field = Literal[fields]  # type: ignore[valid-type]
    cls = pydantic.create_model(
        "PromptCandidate",
        __base__=PromptCandidate,
        instruction=(str, pydantic.Field(tpl.DEFAULT_INSTRUCTION, max_length=tpl.MAX_INSTRUCTION_CHARS,
                                         description="the system turn: what the model is asked")),
        template=(str, pydantic.Field(tpl.DEFAULT_TEMPLATE, max_length=tpl.MAX_TEMPLATE_CHARS,
                                      description="the user turn; placeholders {history} or "
                                      "{liked}/{disliked}, {target} (required), {yes}, {no}")),
        history_length=(int, pydantic.Field(min(10, history_max), ge=0, le=history_max)),
        fields=(list[Field], pydantic.Field(list(fields), min_length=1, max_length=len(fields))),
        lora_steps=(int, pydantic.Field(0, ge=0, le=lora_steps_max,
                                        description="LoRA steps; 0 is zero-shot")),
        lora_rank=(int, pydantic.Field(8, ge=1, le=64)),
        lora_lr=(float, pydantic.Field(1e-3, ge=1e-5, le=1e-1)),
        lora_pairs=(int, pydantic.Field(64, ge=2, le=4096)),
    )  # fmt: skip
    cls.build_key = (fields, history_max, lora_steps_max)
    return cls


class PromptTemplateSpace(TrainedModelSpace):
    """The llm_ranker's prompt: instruction and template text plus its structured knobs."""

    name: ClassVar[str] = "prompt_templates"
    version: ClassVar[str] = "1"
    Candidate: ClassVar[type[pydantic.BaseModel]] = PromptCandidate
    # A 1% relative AUC gain outweighs a 50% shorter prompt: length only breaks near-ties.
    objectives: ClassVar[list[Objective]] = [
        Objective(name="valid_auc", direction="max", weight=1.0),
        Objective(name="prompt_tokens", direction="min", weight=0.02),
    ]
    reported_metrics: ClassVar[list[str]] = ["auc", "logloss"]
    needs_dataset: ClassVar[bool] = True
    # The LLM agent writes these whole: shown uncut in its prompts, with the reply tokens to
    # write them at their maximum length (agents/reply.py `reply_tokens`).
    text_fields: ClassVar[tuple[str, ...]] = ("instruction", "template")
    RUN_SETTINGS = ("threads",)

    def __init__(self, options: SpaceOptions | None = None):
        super().__init__(options)
        if self.options.dataset is None:  # a contract that predates DEFAULT_DATASET
            self.options = self.options.model_copy(update={"dataset": "ml-100k"})
        if self.options.task not in (None, "ctr"):
            raise ConfigError(f"prompt_templates space: the llm_ranker is a ctr model, not {self.options.task}")
        self.settings = self._checked_settings(self.options.settings)
        from autorec.data import load_dataset
        from autorec.data.catalog import item_catalog

        dataset = load_dataset(self.options.dataset)
        if "ctr" not in dataset.tasks:
            raise ConfigError(f"prompt_templates space: dataset '{self.options.dataset}' has no ctr task")
        self.fields: tuple[str, ...] = item_catalog(dataset).fields
        if not self.fields:
            raise ConfigError(
                f"prompt_templates space: dataset '{self.options.dataset}' has no item text "
                "(declare `type: text` columns in a csv/parquet schema)"
            )
        self.Candidate = self.candidate_class()

    def _checked_settings(self, settings: dict[str, Any]) -> dict[str, Any]:
        settings = self.known_settings(settings, SETTINGS_KEYS)
        for key, low in (("max_eval_rows", 2), ("eval_seed", 0), ("history_max", 0),
                         ("lora_steps_max", 0), ("score_batch_size", 1), ("lora_batch_size", 1),
                         ("max_prompt_tokens", 32), ("threads", 1)):  # fmt: skip
            if key in settings:
                value = settings[key]
                if isinstance(value, bool) or not isinstance(value, int) or value < low:
                    raise ConfigError(f"prompt_templates space: {key} must be an integer >= {low}")
        if settings.get("history_max", 0) > 20:
            raise ConfigError("prompt_templates space: history_max must be at most 20")
        return settings

    def candidate_class(self) -> type[pydantic.BaseModel]:
        return candidate_class(
            self.fields,
            self.settings.get("history_max", DEFAULT_HISTORY_MAX),
            self.settings.get("lora_steps_max", DEFAULT_LORA_STEPS_MAX),
        )

    # The interface.

    def describe(self) -> str:
        rows = self.settings.get("max_eval_rows", DEFAULT_MAX_EVAL_ROWS)
        steps_max = self.settings.get("lora_steps_max", DEFAULT_LORA_STEPS_MAX)
        lines = [
            f"Prompt-template search for the llm_ranker on dataset '{self.options.dataset}' "
            "(ctr: will the user like the item?). A small causal LM (SmolLM2-135M-Instruct by "
            "default) reads a chat: the `instruction` as the system turn, the rendered "
            "`template` as the user turn; the score is P(yes) against P(no) of its first "
            "answer token. Each candidate is scored on the same "
            f"{rows} validation rows (and {rows} test rows, reported only).",
            "Objectives: valid_auc (maximise, weight 1.0) and prompt_tokens, the mean prompt "
            "length per prediction (minimise, weight 0.02), each relative to the reference.",
            "",
            "Template placeholders (write each as {name}; {{ and }} are literal braces; any other "
            "brace is rejected):",
        ]
        lines += [f"- {{{name}}}: {meaning}" for name, meaning in tpl.PLACEHOLDERS.items()]
        lines += [
            "The template must contain {target} and at least one of {history}, {liked}, "
            f"{{disliked}}; at most {tpl.MAX_TEMPLATE_CHARS} characters. The instruction takes "
            f"no placeholders, at most {tpl.MAX_INSTRUCTION_CHARS} characters. Whitespace is "
            "normalised. Items appear as \"first field\" (other fields), e.g. "
            "\"Toy Story\" (1995; Animation, Children's, Comedy).",
            "",
            "Knobs:",
            "- history_length L: how many of the user's earlier items are shown (0 = none).",
            "- history_selection: recent (the last L) or similar (the L most similar to the "
            "target), with similarity cooccurrence (shared training users) or text (MiniLM "
            "embeddings of the item text).",
            f"- fields: item text shown, from {', '.join(self.fields)}.",
            f"- answer: the answer words, one of {', '.join(tpl.ANSWERS)}.",
            f"- lora_steps: 0 is zero-shot; up to {steps_max} steps of LoRA on lora_pairs (k) "
            "training rows, with lora_rank and lora_lr. Costs time, usually gains AUC.",
        ]
        return "\n".join(lines)

    def knowledge(self) -> str:
        return (
            "A 135M model zero-shot is near chance (AUC about 0.5); LoRA on a few hundred rows "
            "is what moves it. Shorter prompts are cheaper and leave the model less to "
            "misread: split liked/disliked lists and a few fields tend to do as well as long "
            "histories. The answer must be read right after the prompt: end the template with "
            "the question and the two answer words."
        )

    def reference(self) -> pydantic.BaseModel:
        return self.Candidate()

    def sample(self, trial: optuna.Trial) -> pydantic.BaseModel:
        history_max = self.settings.get("history_max", DEFAULT_HISTORY_MAX)
        steps_max = self.settings.get("lora_steps_max", DEFAULT_LORA_STEPS_MAX)
        shown = [f for f in self.fields if trial.suggest_categorical(f"show_{f}", [True, False])]
        lora_steps = trial.suggest_categorical(
            "lora_steps", sorted({0, steps_max // 4, steps_max})
        )
        return self.Candidate.model_validate(
            {
                "instruction": INSTRUCTIONS[trial.suggest_categorical("instruction", list(INSTRUCTIONS))],
                "template": tpl.PRESETS[trial.suggest_categorical("layout", list(tpl.PRESETS))],
                "history_length": trial.suggest_int("history_length", 0, history_max),
                "history_selection": trial.suggest_categorical("history_selection", ["recent", "similar"]),
                "similarity": trial.suggest_categorical("similarity", ["cooccurrence", "text"]),
                "fields": shown or [self.fields[0]],
                "answer": trial.suggest_categorical("answer", list(tpl.ANSWERS)),
                "lora_steps": lora_steps,
                "lora_rank": trial.suggest_categorical("lora_rank", list(LORA_RANKS)),
                "lora_lr": trial.suggest_float("lora_lr", 1e-4, 1e-2, log=True),
                "lora_pairs": trial.suggest_categorical("lora_pairs", list(LORA_PAIRS)),
            }
        )  # fmt: skip

    def suite(self) -> list[SuiteMember]:
        options = (("split", self.settings["split"]),) if "split" in self.settings else ()
        return [SuiteMember(MODEL, self.options.dataset, "ctr", options)]

    def evaluate(self, candidate: pydantic.BaseModel, member: SuiteMember, report: Report) -> dict[str, float]:
        import torch

        from autorec.data import load_dataset
        from autorec.models.llm_ranker.evaluate import fit_and_score

        candidate = self.validate(candidate.model_dump())
        settings = self.trainer_settings(candidate, member)
        threads = settings.pop("threads", None)
        if threads:
            torch.set_num_threads(threads)
        data = load_dataset(member.dataset).task("ctr", **dict(member.options))
        return fit_and_score(
            data, settings,
            max_eval_rows=self.settings.get("max_eval_rows", DEFAULT_MAX_EVAL_ROWS),
            eval_seed=self.settings.get("eval_seed", DEFAULT_EVAL_SEED), report=report,
        )  # fmt: skip

    def trainer_settings(self, candidate: pydantic.BaseModel, member: SuiteMember) -> dict[str, Any]:
        """The llm_ranker settings `evaluate` uses; `autorec export` writes them for
        `autorec train --config`, which scores the full splits."""
        fixed = {key: self.settings[key] for key in RUN_KEYS if key in self.settings}
        return {**candidate.model_dump(), **fixed, **self.run_settings()}
