"""`portfolio` and `agent`: operators (the LLM, TPE, mutation) shared out by a bandit.

Each proposal goes to one operator, picked by sliding-window UCB1 over the operators' recent
rewards: 1 when the candidate beat the best fitness known when its result came in, 0.5 when it
beat its parent (for a parentless proposal: the median fitness of the archive when it was
proposed), 0 otherwise (failed, invalid, or no better). Only the last `window` rewards count, so
the shares follow the search as it moves on: the LLM may lead early and TPE later, or the other
way round. Proposals still being evaluated count as plays (without a reward yet), so a batch of
proposals spreads over the operators instead of piling onto the current leader.

`Proposal.operator` names the operator ("llm:refine", "tpe", "mutate"), so the archive records
which one made each candidate, and `observe` routes each result back to it. TPE is also told the
results of the other operators' candidates (when its sampler can represent them), so it models
the whole archive rather than its own trials only.

Screening (`screen`, on by default when TPE is an operator): a proposal from any other operator
is scored by the archive surrogate (agents/surrogate.py, TPE's density ratio over the run's
candidates) against the candidate TPE would draw for the same slot; when TPE's draw scores higher
it is evaluated instead and the other proposal is stored as "screened" (with its LLM calls, never
evaluated). A weak operator then costs LLM time, never an evaluation. Screening starts once
`screen_after` candidates have finished; before that the surrogate knows too little. A screened
proposal, a reply that repeats a known candidate, and an LLM reply that had to be mutated into a
new candidate all count as failed plays of the operator that made them, at once.

`agent`, the default proposer, is this portfolio with all three operators; `operators=llm` gives
the pure LLM loop.
"""

from __future__ import annotations

import math
import statistics
import warnings
from collections import deque
from typing import Any, ClassVar

import optuna
from autorec.agents.agent import LLMProposer, flag
from autorec.agents.base import CandidateResult, Proposal, ProposalContext, Proposer
from autorec.agents.graph import ArchiveGraph, is_selectable, pending_node
from autorec.agents.mutation import MutationProposer, check_options
from autorec.agents.optuna_proposers import TPEProposer
from autorec.agents.surrogate import ArchiveSurrogate

from autorec.errors import ConfigError
from autorec.space import candidate_hash

OPERATORS = ("llm", "tpe", "mutate")
STATE_VERSION = 1
IMPROVED_BEST, IMPROVED_PARENT = 1.0, 0.5


class PortfolioProposer(Proposer):
    """A bandit over proposal operators."""

    name: ClassVar[str] = "portfolio"
    OPTIONS: ClassVar[dict[str, str]] = {
        **LLMProposer.OPTIONS,
        "operators": "comma-separated operators among llm, tpe, mutate (default all three)",
        "window": "recent rewards the bandit counts (default 30)",
        "ucb_c": "UCB exploration constant (default 0.5)",
        "share": "tell TPE the results of the other operators' candidates (default true)",
        "tpe_n_startup_trials": "TPE's random draws before it models the results (default 8)",
        "screen": "evaluate another operator's proposal only when the archive surrogate ranks it "
        "at least as high as TPE's draw (default true; needs tpe among the operators)",
        "screen_after": "finished candidates before screening starts (default 8)",
    }

    def __init__(self, space, seed: int = 0, **options: Any):
        super().__init__(space, seed)
        check_options(self.name, options, self.OPTIONS)
        self.operators = self._parse_operators(options.get("operators", ",".join(OPERATORS)))
        try:
            self.window_size = int(options.get("window", 30))
            self.ucb_c = float(options.get("ucb_c", 0.5))
        except (TypeError, ValueError):
            raise ConfigError(f"proposer '{self.name}': window and ucb_c must be numbers") from None
        if self.window_size < 1 or self.ucb_c < 0:
            raise ConfigError(f"proposer '{self.name}': window must be >= 1 and ucb_c >= 0")
        share = options.get("share", True)
        self.share = flag(share)
        self.screen = flag(options.get("screen", True)) and "tpe" in self.operators
        try:
            self.screen_after = int(options.get("screen_after", 8))
        except (TypeError, ValueError):
            raise ConfigError(f"proposer '{self.name}': screen_after must be an integer") from None
        self.ops: dict[str, Proposer] = {}
        for op in self.operators:
            if op == "llm":
                llm_options = {k: v for k, v in options.items() if k in LLMProposer.OPTIONS}
                self.ops[op] = LLMProposer(space, seed, **llm_options)
            elif op == "tpe":
                startup = options.get("tpe_n_startup_trials", 8)
                self.ops[op] = TPEProposer(space, seed, n_startup_trials=startup)
            else:
                keys = MutationProposer.OPTIONS
                self.ops[op] = MutationProposer(
                    space, seed, **{k: v for k, v in options.items() if k in keys}
                )
        self.window: deque[tuple[str, float]] = deque(maxlen=self.window_size)
        self.pending: dict[str, dict[str, Any]] = {}  # candidate hash -> operator, baseline
        self.counts = {op: 0 for op in self.operators}  # proposals made
        self.results = {op: 0 for op in self.operators}  # rewards received
        self.rewards = {op: 0.0 for op in self.operators}  # their sum
        self.screened = {op: 0 for op in self.operators}  # proposals TPE's draw replaced
        self.best: float | None = None

    def _parse_operators(self, value: Any) -> list[str]:
        items = value.split(",") if isinstance(value, str) else list(value or [])
        ops = list(dict.fromkeys(str(i).strip() for i in items if str(i).strip()))
        wrong = [op for op in ops if op not in OPERATORS]
        if wrong or not ops:
            raise ConfigError(
                f"proposer '{self.name}': operators must name some of {', '.join(OPERATORS)}; "
                f"got {value!r}"
            )
        return ops

    # The bandit.

    def scores(self) -> dict[str, float]:
        """Each operator's UCB score now (inf: not played within the window yet)."""
        plays = {op: 0 for op in self.operators}
        sums = {op: 0.0 for op in self.operators}
        for op, reward in self.window:
            if op in plays:
                plays[op] += 1
                sums[op] += reward
        waiting = {op: 0 for op in self.operators}
        for entry in self.pending.values():
            if entry["op"] in waiting:
                waiting[entry["op"]] += 1
        total = max(2, sum(plays.values()) + sum(waiting.values()))
        scores = {}
        for op in self.operators:
            n = plays[op] + waiting[op]
            if n == 0:
                scores[op] = math.inf
                continue
            mean = sums[op] / plays[op] if plays[op] else 0.5
            scores[op] = mean + self.ucb_c * math.sqrt(2 * math.log(total) / n)
        return scores

    def ranked(self) -> list[str]:
        scores = self.scores()
        return sorted(self.operators, key=lambda op: (-scores[op], self.operators.index(op)))

    def _reward(self, op: str, reward: float) -> None:
        self.window.append((op, reward))
        self.results[op] = self.results.get(op, 0) + 1
        self.rewards[op] = self.rewards.get(op, 0.0) + reward

    # The proposer interface.

    def propose(self, context: ProposalContext, n: int) -> list[Proposal]:
        graph = ArchiveGraph(context.archive, self.space.schema())
        for node in graph.selectable():
            self._note_best(node.fitness)
        fitnesses = [node.fitness for node in graph.selectable()]
        median = statistics.median(fitnesses) if fitnesses else None
        self._forget_stale()
        archive = list(context.archive)
        proposals: list[Proposal] = []
        for _ in range(n):
            sub_context = ProposalContext(
                context.space, context.run_id, archive, context.evaluations_left, context.seed
            )
            chosen, proposal = None, None
            for op in self.ranked():
                made = self.ops[op].propose(sub_context, 1)
                if made:
                    chosen, proposal = op, made[0]
                    break
                self._reward(op, 0.0)  # nothing left to propose: no use this round
            if proposal is None:
                break
            self.counts[chosen] += 1
            if proposal.error is None and chosen != "tpe" and self._screening(graph):
                replaced = self._screen(proposal, sub_context, graph)
                if replaced is not None:
                    proposals.append(proposal)  # stored as screened, with its LLM calls
                    self.screened[chosen] += 1
                    self._reward(chosen, 0.0)  # it lost its slot: a failed play
                    chosen, proposal = "tpe", replaced
                    self.counts["tpe"] += 1
            if proposal.error is not None or graph.contains(proposal.params):
                # An unusable reply, or one that repeats a known candidate: a failed play at once
                # (a duplicate gets no result the bandit could wait for).
                self._reward(chosen, 0.0)
            else:
                if chosen == "llm" and proposal.operator.endswith("+mutate"):
                    # The LLM repeated itself and mutation made the candidate: the LLM's play
                    # failed; the result is mutation's, when mutation is an operator.
                    self._reward("llm", 0.0)
                    chosen = "mutate" if "mutate" in self.ops else "llm"
                parents = [graph.nodes[p] for p in proposal.parents if p in graph.nodes]
                parent_fitness = [p.fitness for p in parents if is_selectable(p)]
                baseline = max(parent_fitness) if parent_fitness else median
                step = sum(self.counts.values())
                self.pending[_hash(proposal.params)] = {
                    "op": chosen,
                    "baseline": baseline,
                    "step": step,
                }
                next_id = min([0, *(c.id for c in archive)]) - 1
                archive.append(
                    pending_node(next_id, proposal.params, proposal.operator, proposal.parents)
                )
                graph.add(archive[-1])
            proposals.append(proposal)
        return proposals

    def _screening(self, graph: ArchiveGraph) -> bool:
        return self.screen and len(graph.selectable()) >= self.screen_after

    def _screen(
        self, proposal: Proposal, context: ProposalContext, graph: ArchiveGraph
    ) -> Proposal | None:
        """TPE's draw for this slot when the surrogate ranks it above `proposal` (whose
        `screened` reason is then set), else None (TPE's draw is withdrawn)."""
        tpe = self.ops["tpe"]
        drawn = tpe.propose(context, 1)
        if not drawn:
            return None
        surrogate = ArchiveSurrogate(context.archive, graph.ranges)
        mine, theirs = surrogate.score(proposal.params), surrogate.score(drawn[0].params)
        if mine >= theirs:
            tpe.withdraw(drawn[0].params)
            return None
        proposal.screened = (
            f"screened: the archive surrogate ranks it below TPE's draw "
            f"(log density ratio {mine:.3g} < {theirs:.3g})"
        )
        return drawn[0]

    def _forget_stale(self) -> None:
        """Drop pending proposals whose result never came (the engine found a duplicate, the
        run stopped): left there, they would hold their operator's exploration bonus down."""
        now = sum(self.counts.values())
        horizon = max(2 * self.window_size, 100)
        for key in [k for k, e in self.pending.items() if now - e.get("step", now) > horizon]:
            del self.pending[key]

    def observe(self, result: CandidateResult) -> None:
        key = _hash(result.params)
        entry = self.pending.pop(key, None)
        op = entry["op"] if entry else self.route(result.operator)
        if op in self.ops:
            self.ops[op].observe(result)
        fitness = result.fitness if result.status == "done" else None
        if fitness is not None and not math.isfinite(fitness):
            fitness = None
        if entry is not None:
            if fitness is None:
                reward = 0.0
            elif self.best is None or fitness > self.best:
                reward = IMPROVED_BEST
            elif entry["baseline"] is not None and fitness > entry["baseline"]:
                reward = IMPROVED_PARENT
            else:
                reward = 0.0
            self._reward(entry["op"], reward)
        if fitness is not None:
            self._note_best(fitness)
        if self.share and isinstance(self.ops.get("tpe"), TPEProposer) and op != "tpe":
            self._share_with_tpe(result, fitness)

    def route(self, operator: str) -> str | None:
        """The operator of the portfolio that made a candidate, from its recorded name."""
        head = (operator or "").split(":", 1)[0].split("+", 1)[0]
        return head if head in self.ops else None

    def _note_best(self, fitness: float | None) -> None:
        if fitness is not None and (self.best is None or fitness > self.best):
            self.best = float(fitness)

    def _share_with_tpe(self, result: CandidateResult, fitness: float | None) -> None:
        """Add another operator's result to TPE's study, as the trial its sampler would have
        drawn for those params; a candidate it cannot represent is recorded as a failed trial."""
        study = self.ops["tpe"].study
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            study.enqueue_trial(dict(result.params), skip_if_exists=False)
            trial = study.ask()
            try:
                drawn = self.space.sample(trial).model_dump(mode="json")
            except Exception:  # params outside what the sampler draws
                drawn = None
            same = drawn is not None and _hash(drawn) == _hash(result.params)
            if same and fitness is not None:
                study.tell(trial, float(fitness))
            else:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)

    # Reporting and resume.

    def shares(self) -> dict[str, int]:
        """Proposals made by each operator so far (for benchmarks and reports)."""
        return dict(self.counts)

    def stats(self) -> dict[str, dict[str, Any]]:
        """Per operator: proposals, results, reward sum, plays and mean reward within the
        window, pending results, and the UCB score now."""
        scores = self.scores()
        out = {}
        for op in self.operators:
            recent = [r for o, r in self.window if o == op]
            out[op] = {
                "proposals": self.counts.get(op, 0),
                "results": self.results.get(op, 0),
                "reward": self.rewards.get(op, 0.0),
                "window_plays": len(recent),
                "window_mean": sum(recent) / len(recent) if recent else None,
                "pending": sum(1 for e in self.pending.values() if e["op"] == op),
                "screened": self.screened.get(op, 0),
                "score": scores[op],
            }
        if isinstance(self.ops.get("llm"), LLMProposer):
            out["llm"]["modes"] = self.ops["llm"].mode_stats()
        return out

    def state_dict(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "proposer": self.name,
            "operators": list(self.operators),
            "window": [[op, r] for op, r in self.window],
            "pending": dict(self.pending),
            "counts": dict(self.counts),
            "results": dict(self.results),
            "rewards": dict(self.rewards),
            "screened": dict(self.screened),
            "best": self.best,
            "ops": {op: proposer.state_dict() for op, proposer in self.ops.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("proposer", self.name) not in ("portfolio", "agent"):
            raise ConfigError(
                f"proposer '{self.name}' cannot resume the state of '{state['proposer']}'"
            )
        self.window = deque(
            ((str(op), float(r)) for op, r in state.get("window", [])), maxlen=self.window_size
        )
        self.pending = {k: dict(v) for k, v in (state.get("pending") or {}).items()}
        for attr in ("counts", "results", "rewards", "screened"):
            values = getattr(self, attr)
            values.update(
                {op: type(values.get(op, 0))(v) for op, v in (state.get(attr) or {}).items()}
            )
        self.best = state.get("best")
        for op, sub_state in (state.get("ops") or {}).items():
            if op in self.ops:
                self.ops[op].load_state_dict(sub_state)


class AgentProposer(PortfolioProposer):
    """The default proposer: the LLM agent beside TPE and mutation under the bandit."""

    name: ClassVar[str] = "agent"


def _hash(params: Any) -> str:
    try:
        return candidate_hash(params)
    except Exception:
        return repr(params)[:2_000]
