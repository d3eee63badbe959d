"""The universal LLM operator: one LLM call per proposal, in one of four memory modes.

- refine: the parent, its metrics, what was already tried from it, neighbours, top-k, failures;
- compare: the parent's children, each as "what changed -> what it did" (helped or hurt);
- combine: two parents and where they differ;
- restart: the space description alone (plus a random anchor on one field, for variety).

The mode is a seeded weighted choice that depends on the archive (restart is favoured while the
archive is small or the best fitness stagnates; combine needs two finished nodes; compare needs a
node with finished children), or a fixed cycle (`modes="refine,compare"`). Parents come from the
graph's selection policy. The reply is parsed and validated (`reply.py`); an unusable reply
becomes a Proposal with `error` set, which the engine records as an invalid candidate with its
LLM calls. A reply that repeats a known candidate is asked again in another mode (bounded), with
the repeats listed as tried and sampled at `retry_temperature` (seeded per call), then mutated
(operator "llm:<mode>+mutate"), since a greedy local model repeats itself readily.

`LLMProposer` is the pure LLM loop; the default proposer `agent` runs it beside TPE and mutation
under a bandit (see `portfolio.py`).
"""

from __future__ import annotations

import random
from typing import Any, ClassVar

from autorec.agents.base import CandidateResult, Proposal, ProposalContext, Proposer
from autorec.agents.graph import (
    ArchiveGraph,
    SelectionPolicy,
    derived_seed,
    field_ranges,
    pending_node,
    seeded_rng,
)
from autorec.agents.llm.base import LLMBackend
from autorec.agents.mutation import check_options, mutate_new
from autorec.agents.prompts import (
    MODES,
    RATIONALE_CHARS,
    Limits,
    PromptRequest,
    anchor_choice,
    anchor_hint,
    build_messages,
    focus_fields,
    focus_hint,
    repair_message,
    reply_schema,
    system_message,
)
from autorec.agents.novelty import excluding, pinned
from autorec.agents.reply import ask, stored_params

from autorec.errors import ConfigError

# Base weights of the modes; the archive's state scales them (see `choose_mode`).
MODE_WEIGHTS = {"refine": 0.4, "compare": 0.2, "combine": 0.2, "restart": 0.2}
SMALL_ARCHIVE = 3  # fewer finished candidates than this: favour restart (diversity first)
STATE_VERSION = 1

LLM_OPTIONS: dict[str, str] = {
    "llm": "LLM backend: 'local' (default, SmolLM2-135M) or 'openai:MODEL'",
    "llm_base_url": "base URL of an OpenAI-compatible server (vLLM, Ollama, llama.cpp, ...)",
    "backend": "an LLMBackend instance (Python callers and tests; replaces llm)",
    "temperature": "sampling temperature (default 0: greedy)",
    "retry_temperature": "temperature of the calls that follow a reply repeating a known "
    "candidate (default 0.8; seeded, so a run still repeats)",
    "max_tokens": "most tokens per reply (default 512)",
    "differ": "decode away from known points: refine/compare bar one hinted field from the "
    "parent's value, combine one per parent, restart pins its anchor (default true; "
    "agents/novelty.py)",
    "rationale_chars": "longest rationale asked for in a reply (default the backend's: 120, "
    "48 for 'local'; 0 asks for none)",
    "repairs": "extra calls that feed a validation error back (default 2; 0 for 'local', "
    "which decodes under the schema)",
}


def make_backend(options: dict[str, Any]) -> LLMBackend:
    """The backend the options name; an instance passed as `backend` is used as is."""
    backend = options.get("backend")
    if backend is not None:
        if not hasattr(backend, "complete"):
            raise ConfigError("proposer option 'backend' must be an LLMBackend instance")
        return backend
    spec = options.get("llm", "local")
    if not isinstance(spec, str) or not spec:
        raise ConfigError("proposer option 'llm' must be 'local' or 'openai:MODEL'")
    try:
        from autorec.agents.llm import load_backend
    except ImportError as err:
        raise ConfigError(f"LLM backends are not available in this installation ({err})") from None
    return load_backend(spec, base_url=options.get("llm_base_url"))


def default_repairs(backend: Any) -> int:
    """Local backends decode under the JSON schema, so a repair rarely helps; remote ones get
    two."""
    return 0 if getattr(backend, "constrained", False) else 2


def flag(value: Any) -> bool:
    """A boolean option as Python or the CLI gives it (true/false, 1/0, yes/no)."""
    return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes")


def _number(name: str, options: dict[str, Any], key: str, default, low, kind=float):
    value = options.get(key, default)
    try:
        value = kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"proposer '{name}': {key} must be a number, got {value!r}") from None
    if value < low:
        raise ConfigError(f"proposer '{name}': {key} must be >= {low}")
    return value


class LLMProposer(Proposer):
    """The LLM operator on its own: select, retrieve, prompt, parse, dedupe."""

    name: ClassVar[str] = "llm"
    OPTIONS: ClassVar[dict[str, str]] = {
        **LLM_OPTIONS,
        "modes": "'auto' (default: a seeded choice weighted by the archive's state) or a "
        "comma-separated cycle of refine, compare, combine, restart",
        "top_k": "best candidates shown in a prompt (default 5)",
        "neighbours": "nearest neighbours of the parent shown (default 3)",
        "failures": "recent failures shown, with their error text (default 3)",
        "children": "the parent's children shown (default 5)",
        "max_prompt_chars": "cap on a prompt's characters, system message included (default 12000)",
        "retries": "extra calls, in another mode, when a reply repeats a known candidate "
        "(default 2)",
        "tournament": "nodes per selection tournament (default 4)",
        "explore": "exploration bonus for little-expanded nodes (default 0.5)",
        "stagnation": "finished candidates without a new best before restart is favoured "
        "(default 5)",
    }

    def __init__(self, space, seed: int = 0, **options: Any):
        super().__init__(space, seed)
        check_options(self.name, options, self.OPTIONS)
        n = self.name
        self.temperature = _number(n, options, "temperature", 0.0, 0.0)
        self.retry_temperature = _number(n, options, "retry_temperature", 0.8, 0.0)
        self.max_tokens = _number(n, options, "max_tokens", 512, 16, int)
        self.retries = _number(n, options, "retries", 2, 0, int)
        self.differ = flag(options.get("differ", True))
        self.stagnation = _number(n, options, "stagnation", 5, 1, int)
        self.limits = Limits(
            top_k=_number(n, options, "top_k", 5, 0, int),
            neighbours=_number(n, options, "neighbours", 3, 0, int),
            failures=_number(n, options, "failures", 3, 0, int),
            children=_number(n, options, "children", 5, 0, int),
            max_chars=_number(n, options, "max_prompt_chars", 12_000, 1_000, int),
        )
        self.policy = SelectionPolicy(
            tournament=_number(n, options, "tournament", 4, 1, int),
            explore=_number(n, options, "explore", 0.5, 0.0),
        )
        self.modes = self._parse_modes(options.get("modes", "auto"))
        self.backend = make_backend(options)
        repairs = options.get("repairs")
        self.repairs = (
            default_repairs(self.backend)
            if repairs is None
            else _number(n, options, "repairs", 2, 0, int)
        )
        rationale_chars = options.get("rationale_chars")
        self.schema = reply_schema(space, (
            getattr(self.backend, "rationale_chars", RATIONALE_CHARS) if rationale_chars is None
            else _number(n, options, "rationale_chars", RATIONALE_CHARS, 0, int)
        ))  # fmt: skip
        self.ranges = field_ranges(space.schema())
        self._system: str | None = None
        self.counter = 0  # proposals made: with the run's seed, it seeds every random choice
        self.stats: dict[str, dict[str, int]] = {m: _empty_stats() for m in MODES}

    def _parse_modes(self, value: Any) -> list[str] | None:
        if value in (None, "", "auto"):
            return None
        items = value.split(",") if isinstance(value, str) else list(value)
        modes = [str(m).strip() for m in items if str(m).strip()]
        wrong = [m for m in modes if m not in MODES]
        if wrong or not modes:
            raise ConfigError(
                f"proposer '{self.name}': modes must be 'auto' or names among "
                f"{', '.join(MODES)}; got {value!r}"
            )
        return modes

    # The proposer interface.

    def propose(self, context: ProposalContext, n: int) -> list[Proposal]:
        graph = ArchiveGraph(context.archive, self.space.schema())
        proposals = []
        for _ in range(n):
            proposal = self.propose_one(context, graph)
            proposals.append(proposal)
            if proposal.error is None:
                graph.add(
                    pending_node(
                        graph.next_pending_id(),
                        proposal.params,
                        proposal.operator,
                        proposal.parents,
                    )
                )
        return proposals

    def propose_one(self, context: ProposalContext, graph: ArchiveGraph) -> Proposal:
        """One proposal: up to 1 + retries LLM calls (plus repairs), then maybe a mutation."""
        rng = seeded_rng(context.seed, self.name, self.counter)
        step = self.counter
        self.counter += 1
        mode = self.choose_mode(graph, rng, step)
        tried_modes: list[str] = []
        avoid: list[dict[str, Any]] = []
        calls: list[Any] = []
        repeated = None  # the last valid reply that repeated a known candidate
        for attempt in range(self.retries + 1):
            parents = self.choose_parents(mode, graph, rng)
            if parents is None:  # the mode's parents are gone (e.g. all nodes filtered): restart
                mode, parents = "restart", []
            tried_modes.append(mode)
            stats = self.stats[mode]
            schema = self.schema
            if mode == "restart":
                anchor = anchor_choice(self.ranges, rng)
                hint = anchor_hint(anchor)
                if self.differ and anchor is not None:
                    schema = pinned(self.schema, *anchor) or self.schema
            else:
                fields = focus_fields(self.ranges, rng)
                schema, changed = self._away_from(parents, fields)
                hint = focus_hint(fields, changed)
            request = PromptRequest(mode, parents, hint=hint, avoid=avoid)
            messages = build_messages(
                self.space, request, graph, self.limits, system=self._system_text()
            )
            answer = ask(
                self.backend,
                messages,
                self.space,
                schema,
                repairs=self.repairs,
                repair_prompt=repair_message,
                max_tokens=self.max_tokens,
                # Greedy decoding given nearly the same prompt repeats itself: after a repeat,
                # sample (seeded per call, so the run stays reproducible).
                temperature=self.temperature if not avoid else max(
                    self.temperature, self.retry_temperature
                ),
                seed=derived_seed(context.seed, "llm-call", step, attempt),
            )
            calls.extend(answer.calls)
            _count_calls(stats, answer.calls)
            parsed = answer.parsed
            if not parsed.ok:
                stats["invalid"] += 1
                if repeated is not None:
                    break  # an earlier reply was valid but known: mutate that one instead
                stats["proposals"] += 1
                return Proposal(
                    params=stored_params(parsed, answer.text),
                    operator=f"{self.name}:{mode}",
                    parents=[p.id for p in parents],
                    rationale=parsed.rationale,
                    llm_calls=calls,
                    error=parsed.error,
                )
            operator, parent_ids = f"{self.name}:{mode}", [p.id for p in parents]
            if not graph.contains(parsed.params):
                stats["proposals"] += 1
                return Proposal(parsed.params, operator, parent_ids, parsed.rationale, calls)
            stats["duplicates"] += 1
            repeated = (parsed, operator, parent_ids, stats)
            avoid.append(parsed.params)
            if attempt < self.retries:
                mode = self.other_mode(graph, rng, tried_modes)
        # The replies repeated known candidates: perturb the last one instead.
        parsed, operator, parent_ids, stats = repeated
        found = mutate_new(self.space, parsed.params, self.ranges, rng, graph.contains)
        stats["proposals"] += 1
        if found is None:  # the engine records it as a duplicate, with its calls
            return Proposal(parsed.params, operator, parent_ids, parsed.rationale, calls)
        params, notes = found
        stats["fallbacks"] += 1
        rationale = f"{parsed.rationale} [mutated: {', '.join(notes)}]".strip()
        return Proposal(params, f"{operator}+mutate", parent_ids, rationale, calls)

    def observe(self, result: CandidateResult) -> None:
        mode = mode_of(result.operator)
        if mode in self.stats:
            self.stats[mode]["done" if result.status == "done" else "failed"] += 1

    # Choices.

    def available_modes(self, graph: ArchiveGraph) -> list[str]:
        done = graph.selectable()
        modes = []
        if done:
            modes.append("refine")
        if any(graph.finished_children(node.id) for node in done):
            modes.append("compare")
        if len(done) >= 2:
            modes.append("combine")
        modes.append("restart")
        return modes

    def choose_mode(self, graph: ArchiveGraph, rng: random.Random, step: int) -> str:
        available = self.available_modes(graph)
        if self.modes is not None:
            wanted = self.modes[step % len(self.modes)]
            if wanted in available:
                return wanted
            return "refine" if "refine" in available else "restart"
        weights = {m: MODE_WEIGHTS[m] for m in available}
        if len(graph.selectable()) < SMALL_ARCHIVE:
            weights["restart"] *= 2.5
        if graph.stagnation() >= self.stagnation:
            weights["restart"] *= 2.0
            if "combine" in weights:
                weights["combine"] *= 1.5
        names = sorted(weights, key=MODES.index)
        return rng.choices(names, weights=[weights[m] for m in names])[0]

    def other_mode(self, graph: ArchiveGraph, rng: random.Random, tried: list[str]) -> str:
        """A mode for a retry after a duplicate: one not tried yet for this proposal if any."""
        untried = [m for m in self.available_modes(graph) if m not in tried]
        if not untried:
            return "restart"
        return rng.choice(untried)

    def choose_parents(self, mode: str, graph: ArchiveGraph, rng: random.Random):
        """The mode's parents (refine/compare: one, combine: two, restart: none), or None."""
        if mode == "restart":
            return []
        if mode == "compare":
            node = self.policy.select(
                graph, rng, where=lambda n: bool(graph.finished_children(n.id))
            )
            return None if node is None else [node]
        first = self.policy.select(graph, rng)
        if first is None:
            return None
        if mode == "combine":
            second = self.policy.select(graph, rng, exclude={first.id})
            return None if second is None else [first, second]
        return [first]

    def _system_text(self) -> str:
        if self._system is None:
            self._system = system_message(self.space, self.limits, schema=self.schema)
        return self._system

    def _away_from(self, parents, fields: list[str]) -> tuple[dict[str, Any], str | None]:
        """The reply schema with a hinted field barred from each parent's value (the first
        field that can be, per parent, up to two), and the first parent's field (see
        agents/novelty.py); unchanged when `differ` is off or nothing can be barred."""
        schema, named = self.schema, None
        if not self.differ:
            return schema, named
        free = list(fields)
        for parent in parents[:2]:
            if not isinstance(parent.params, dict):
                continue
            for field in free:
                barred = excluding(schema, field, parent.params.get(field))
                if barred is not None:
                    schema, named = barred, named or field
                    free.remove(field)
                    break
        return schema, named

    # Reporting and resume.

    def mode_stats(self) -> dict[str, dict[str, int]]:
        """Per mode: proposals, LLM calls, tokens in/out (sum and largest prompt), invalid
        replies, duplicates, mutation fallbacks, and results done/failed."""
        return {m: dict(s) for m, s in self.stats.items()}

    def state_dict(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "proposer": self.name,
            "counter": self.counter,
            "stats": self.mode_stats(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.counter = int(state.get("counter", 0))
        for mode, values in (state.get("stats") or {}).items():
            if mode in self.stats:
                self.stats[mode].update(
                    {k: int(v) for k, v in values.items() if k in self.stats[mode]}
                )


def mode_of(operator: str) -> str:
    """'llm:refine+mutate' -> 'refine'."""
    _, _, rest = (operator or "").partition(":")
    return rest.split("+", 1)[0]


def _count_calls(stats: dict[str, int], calls: list[Any]) -> None:
    for call in calls:
        tokens_in = int(call.tokens_in or 0)
        stats["calls"] += 1
        stats["tokens_in"] += tokens_in
        stats["tokens_out"] += int(call.tokens_out or 0)
        stats["max_tokens_in"] = max(stats["max_tokens_in"], tokens_in)


def _empty_stats() -> dict[str, int]:
    keys = (
        "proposals",
        "calls",
        "tokens_in",
        "tokens_out",
        "max_tokens_in",
        "invalid",
        "duplicates",
        "fallbacks",
        "done",
        "failed",
    )
    return {k: 0 for k in keys}
