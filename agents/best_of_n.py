"""`best-of-n`: independent LLM samples with no archive context, the agent's ablation baseline.

Every proposal is one restart-mode prompt (the space description, objectives and schema only),
sampled at a temperature above zero with its own seed. Nothing from the archive reaches the
prompt: no parents, no results, no failures. What the agent gains over this baseline is what
selection, retrieval and the operator portfolio are worth.
"""

from __future__ import annotations

from typing import Any, ClassVar

from autorec.agents.agent import LLM_OPTIONS, _number, default_repairs, make_backend
from autorec.agents.base import Proposal, ProposalContext, Proposer
from autorec.agents.graph import ArchiveGraph, derived_seed
from autorec.agents.mutation import check_options
from autorec.agents.prompts import (
    Limits,
    PromptRequest,
    build_messages,
    repair_message,
    reply_schema,
    system_message,
)
from autorec.agents.reply import ask, stored_params


class BestOfNProposer(Proposer):
    """N independent samples of one context-free prompt."""

    name: ClassVar[str] = "best-of-n"
    OPTIONS: ClassVar[dict[str, str]] = {
        **LLM_OPTIONS,
        "temperature": "sampling temperature (default 0.8; must be > 0 for independent samples)",
        "max_prompt_chars": "cap on a prompt's characters (default 12000)",
    }

    def __init__(self, space, seed: int = 0, **options: Any):
        super().__init__(space, seed)
        check_options(self.name, options, self.OPTIONS)
        self.temperature = _number(self.name, options, "temperature", 0.8, 0.0)
        if self.temperature <= 0:
            from autorec.errors import ConfigError

            raise ConfigError("proposer 'best-of-n': temperature must be > 0 (independent samples)")
        self.max_tokens = _number(self.name, options, "max_tokens", 512, 16, int)
        self.limits = Limits(
            max_chars=_number(self.name, options, "max_prompt_chars", 12_000, 1_000, int)
        )
        self.backend = make_backend(options)
        repairs = options.get("repairs")
        self.repairs = (
            default_repairs(self.backend)
            if repairs is None
            else _number(self.name, options, "repairs", 2, 0, int)
        )
        self.schema = reply_schema(space)
        self.counter = 0
        self._messages = None

    def messages(self):
        """The one prompt every sample answers (it depends on the space alone)."""
        if self._messages is None:
            request = PromptRequest("restart", [])
            self._messages = build_messages(
                self.space,
                request,
                ArchiveGraph([]),
                self.limits,
                system=system_message(self.space, self.limits),
            )
        return self._messages

    def propose(self, context: ProposalContext, n: int) -> list[Proposal]:
        proposals = []
        for _ in range(n):
            seed = derived_seed(self.seed, self.name, self.counter)
            self.counter += 1
            answer = ask(
                self.backend,
                self.messages(),
                self.space,
                self.schema,
                repairs=self.repairs,
                repair_prompt=repair_message,
                max_tokens=self.max_tokens,
                temperature=self.temperature,
                seed=seed,
            )
            parsed = answer.parsed
            if parsed.ok:
                proposals.append(
                    Proposal(parsed.params, self.name, [], parsed.rationale, answer.calls)
                )
            else:
                proposals.append(
                    Proposal(
                        stored_params(parsed, answer.text),
                        self.name,
                        [],
                        parsed.rationale,
                        answer.calls,
                        error=parsed.error,
                    )
                )
        return proposals

    def state_dict(self) -> dict[str, Any]:
        return {"proposer": self.name, "counter": self.counter}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.counter = int(state.get("counter", 0))
