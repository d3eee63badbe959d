"""The operator portfolio (`portfolio`, and `agent` by default): a bandit over llm, tpe, mutate."""

from __future__ import annotations

import json

import pydantic
import pytest
from autorec.agents import (
    CandidateResult,
    CandidateSummary,
    Proposal,
    ProposalContext,
    Proposer,
    load_proposer,
)
from autorec.agents.llm.base import Completion, LLMBackend
from autorec.agents.portfolio import PortfolioProposer

from autorec.errors import ConfigError
from autorec.space import Objective, SearchSpace, SuiteMember, candidate_hash


class Point(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    x: float = pydantic.Field(0.0, ge=-5, le=5)
    y: float = pydantic.Field(0.0, ge=-5, le=5)


class Bowl(SearchSpace):
    """Closed form: score = -|p - (1, -2)|^2, best 0 at (1, -2)."""

    name = "bowl"
    Candidate = Point
    objectives = [Objective(name="score", direction="max")]

    def describe(self):
        return "x and y in [-5, 5]; the score is a smooth bowl."

    def reference(self):
        return Point()

    def sample(self, trial):
        return Point(x=trial.suggest_float("x", -5, 5), y=trial.suggest_float("y", -5, 5))

    def suite(self):
        return [SuiteMember("bowl", "none", "closed-form")]

    def evaluate(self, candidate, member, report):
        return {"score": -((candidate.x - 1) ** 2 + (candidate.y + 2) ** 2)}


def score(p):
    return -((p["x"] - 1) ** 2 + (p["y"] + 2) ** 2)


class Scripted(LLMBackend):
    """Replies from a queue, cycled."""

    name = "local"
    constrained = True  # like the real local backend: no repair calls

    def __init__(self, texts):
        super().__init__("scripted")
        self.texts, self.count = list(texts), 0

    def complete(self, messages, schema=None, *, max_tokens=512, temperature=0.0, seed=None):
        text = self.texts[self.count % len(self.texts)]
        self.count += 1
        return Completion(text, self.name, self.model, messages, tokens_in=100, tokens_out=20)


class Stub(Proposer):
    """An operator whose proposals step along x; `good` ones land ever closer to the optimum."""

    def __init__(self, space, operator, start):
        super().__init__(space)
        self.operator, self.next_x, self.observed = operator, start, []

    def propose(self, context, n):
        out = []
        for _ in range(n):
            self.next_x += 0.001
            out.append(Proposal({"x": round(self.next_x, 6), "y": 3.0}, self.operator))
        return out

    def observe(self, result):
        self.observed.append(result.operator)


def run(portfolio, space, steps, fitness, archive=None):
    """Propose one at a time, 'evaluate' with `fitness(params, operator)`, observe."""
    archive = (
        archive
        if archive is not None
        else [CandidateSummary(1, {"x": 0.0, "y": 0.0}, "done", 0.0, {}, "reference", [], 0)]
    )
    made = []
    for _ in range(steps):
        proposals = portfolio.propose(ProposalContext(space, 1, archive, None, 0), 1)
        if not proposals:
            break
        *screened, proposal = proposals
        for other in screened:  # stored, never evaluated
            assert other.screened is not None
            archive.append(
                CandidateSummary(len(archive) + 1, other.params, "screened", None, {},
                                 other.operator, other.parents, 1, other.screened)
            )  # fmt: skip
            made.append((other.operator, other.params, "screened"))
        cid = len(archive) + 1
        if proposal.error is not None:
            archive.append(
                CandidateSummary(
                    cid,
                    proposal.params,
                    "invalid",
                    None,
                    {},
                    proposal.operator,
                    proposal.parents,
                    1,
                    proposal.error,
                )
            )
            made.append((proposal.operator, proposal.params, None))
            continue
        f = fitness(proposal.params, proposal.operator)
        archive.append(
            CandidateSummary(
                cid,
                proposal.params,
                "done",
                f,
                {"score": f},
                proposal.operator,
                proposal.parents,
                1,
            )
        )
        portfolio.observe(
            CandidateResult(cid, proposal.params, "done", f, {"score": f}, proposal.operator)
        )
        made.append((proposal.operator, proposal.params, f))
    return made, archive


def stubbed(space, **options):
    options.setdefault("screen", False)  # these tests are about the bandit alone
    portfolio = PortfolioProposer(space, seed=0, operators="tpe,mutate", **options)
    portfolio.operators = ["llm", "tpe", "mutate"]
    portfolio.ops = {
        op: Stub(space, name, start)
        for op, name, start in (
            ("llm", "llm:refine", 0.0),
            ("tpe", "tpe", 1.0),
            ("mutate", "mutate", 2.0),
        )
    }
    for table in (portfolio.counts, portfolio.results):
        table.update({op: 0 for op in portfolio.operators})
    portfolio.rewards.update({op: 0.0 for op in portfolio.operators})
    return portfolio


def test_shares_move_toward_the_operator_that_improves():
    space = Bowl()
    portfolio = stubbed(space)
    step = {"n": 0}

    def fitness(params, operator):
        step["n"] += 1
        # The LLM keeps finding a new best; the others never beat the reference.
        return step["n"] if operator.startswith("llm") else -1.0

    made, _ = run(portfolio, space, 60, fitness)
    shares = portfolio.shares()
    assert sum(shares.values()) == 60
    assert shares["llm"] >= 40 and shares["tpe"] >= 2 and shares["mutate"] >= 2  # still explores
    stats = portfolio.stats()
    assert stats["llm"]["window_mean"] == 1.0 and stats["tpe"]["window_mean"] == 0.0
    assert portfolio.ops["llm"].observed[:1] == ["llm:refine"]  # results went to their operator
    assert len(portfolio.ops["tpe"].observed) == shares["tpe"]

    # The search moves on: now only TPE improves, and the sliding window lets the shares follow.
    def later(params, operator):
        step["n"] += 1
        return step["n"] if operator == "tpe" else -1.0

    before = dict(portfolio.shares())
    run(portfolio, space, 60, later)
    gained = {op: portfolio.shares()[op] - before[op] for op in before}
    assert gained["tpe"] > gained["llm"] and gained["tpe"] > 30


def test_beating_the_parent_earns_half_and_an_unusable_reply_earns_nothing_at_once():
    space = Bowl()
    portfolio = PortfolioProposer(
        space,
        seed=0,
        operators="llm",
        backend=Scripted(
            ['{"x": 0.5, "y": 0.0, "rationale": "toward the optimum"}', "no json at all"]
        ),
    )
    # Only the reference is done when the LLM proposes: whether it refines it (parent -5) or
    # restarts (baseline: the archive's median, -5), the baseline is -5.
    archive = [CandidateSummary(1, {"x": 0.0, "y": 0.0}, "done", -5.0, {}, "reference", [], 0)]
    (first,) = portfolio.propose(ProposalContext(space, 1, archive, None, 0), 1)
    assert first.error is None and first.operator.startswith("llm:")
    assert first.parents in ([], [1])
    # Meanwhile another candidate set a best of 0 (not one the portfolio proposed: no reward).
    portfolio.observe(CandidateResult(2, {"x": 1.0, "y": -2.0}, "done", 0.0, {}, "seed"))
    assert list(portfolio.window) == []
    portfolio.observe(CandidateResult(3, first.params, "done", -1.0, {}, first.operator))
    assert list(portfolio.window) == [("llm", 0.5)]  # above its baseline (-5), below the best (0)
    archive += [
        CandidateSummary(2, {"x": 1.0, "y": -2.0}, "done", 0.0, {}, "seed", [], 0),
        CandidateSummary(3, first.params, "done", -1.0, {}, first.operator, first.parents, 1),
    ]
    (second,) = portfolio.propose(ProposalContext(space, 1, archive, None, 0), 1)
    assert second.error == "the reply contains no JSON object"
    assert list(portfolio.window)[-1] == ("llm", 0.0)  # counted when proposed: no result will come
    assert portfolio.shares() == {"llm": 2}


def test_real_operators_name_themselves_and_tpe_learns_from_the_others():
    space = Bowl()
    replies = [
        json.dumps({"x": 0.1 * i, "y": -0.1 * i, "rationale": f"step {i}"}) for i in range(1, 40)
    ]
    portfolio = load_proposer(
        "portfolio", space, seed=0, backend=Scripted(replies), tpe_n_startup_trials=4
    )
    made, archive = run(portfolio, space, 24, lambda p, op: score(p))
    operators = {op.split(":")[0] for op, _, _ in made}
    assert {"llm", "tpe", "mutate"} <= operators
    assert all(op in ("tpe", "mutate") or op.startswith("llm:") for op, _, _ in made)
    assert len({candidate_hash(p) for _, p, _ in made}) == len(made)  # nothing proposed twice
    shares = portfolio.shares()
    assert sum(shares.values()) == 24 and set(shares) == {"llm", "tpe", "mutate"}
    # TPE's study holds every finished candidate, its own and the others'.
    trials = portfolio.ops["tpe"].study.trials
    told = {candidate_hash(t.params) for t in trials if t.value is not None}
    assert {candidate_hash(p) for _, p, _ in made} <= told
    assert (
        portfolio.stats()["llm"]["modes"]["refine"]["calls"]
        + portfolio.stats()["llm"]["modes"]["restart"]["calls"]
        > 0
    )


def test_a_resumed_portfolio_continues_exactly():
    space = Bowl()
    replies = [json.dumps({"x": 0.2 * i - 1, "y": 0.1 * i, "rationale": "r"}) for i in range(30)]

    def fresh():
        return load_proposer(
            "agent", space, seed=4, backend=Scripted(replies), tpe_n_startup_trials=3
        )

    uninterrupted = fresh()
    _, archive = run(uninterrupted, space, 8, lambda p, op: score(p))
    pending = uninterrupted.propose(ProposalContext(space, 1, archive, None, 0), 2)  # not yet back
    state = json.loads(json.dumps(uninterrupted.state_dict()))  # as the archive stores it
    resumed = fresh()
    resumed.ops["llm"].backend.count = uninterrupted.ops["llm"].backend.count
    resumed.load_state_dict(state)
    assert resumed.state_dict() == uninterrupted.state_dict()
    for proposer in (uninterrupted, resumed):
        for i, proposal in enumerate(pending):
            proposer.observe(
                CandidateResult(100 + i, proposal.params, "done", -3.0, {}, proposal.operator)
            )
    a, _ = run(uninterrupted, space, 8, lambda p, op: score(p), archive=list(archive))
    b, _ = run(resumed, space, 8, lambda p, op: score(p), archive=list(archive))
    assert a == b
    assert resumed.shares() == uninterrupted.shares()


def test_a_seeded_portfolio_repeats_itself():
    space = Bowl()
    replies = [json.dumps({"x": 0.3 * i - 2, "y": 0.2 * i, "rationale": "r"}) for i in range(30)]

    def sequence(seed):
        portfolio = load_proposer(
            "agent", space, seed=seed, backend=Scripted(replies), tpe_n_startup_trials=3
        )
        made, _ = run(portfolio, space, 12, lambda p, op: score(p))
        return made

    assert sequence(1) == sequence(1)


def test_a_batch_spreads_over_operators_and_never_repeats():
    space = Bowl()
    replies = [json.dumps({"x": i, "y": 2}) for i in range(1, 4)]
    portfolio = load_proposer("portfolio", space, seed=0, backend=Scripted(replies))
    archive = [CandidateSummary(1, {"x": 0.0, "y": 0.0}, "done", 0.0, {}, "reference", [], 0)]
    batch = portfolio.propose(ProposalContext(space, 1, archive, None, 0), 6)
    assert len(batch) == 6
    assert len({candidate_hash(p.params) for p in batch}) == 6
    assert set(portfolio.shares().values()) == {2}  # pending proposals count as plays


def test_options_and_operators():
    space = Bowl()
    no_llm = load_proposer("portfolio", space, operators="tpe,mutate")  # needs no LLM at all
    assert set(no_llm.ops) == {"tpe", "mutate"}
    with pytest.raises(ConfigError, match="operators must name"):
        load_proposer("portfolio", space, operators="tpe,genetic")
    with pytest.raises(ConfigError, match="unknown option"):
        load_proposer("portfolio", space, operators="tpe", windw=5)
    with pytest.raises(ConfigError, match="window"):
        load_proposer("portfolio", space, operators="tpe", window=0)
    with pytest.raises(ConfigError, match="cannot resume"):
        no_llm.load_state_dict({"proposer": "tpe"})
    pure = load_proposer("agent", space, operators="llm", backend=Scripted(['{"x": 1, "y": 1}']))
    (proposal,) = pure.propose(ProposalContext(space, 1, [], None, 0), 1)
    assert proposal.operator == "llm:restart"


def test_results_that_never_come_are_forgotten():
    space = Bowl()
    portfolio = stubbed(space, window=5, share=False)
    archive = [CandidateSummary(1, {"x": 0.0, "y": 0.0}, "done", 0.0, {}, "reference", [], 0)]
    for _ in range(130):  # proposed, never observed (e.g. the engine found a duplicate)
        portfolio.propose(ProposalContext(space, 1, archive, None, 0), 1)
    assert len(portfolio.pending) <= 102  # the last 100 or so wait on
    assert sum(portfolio.shares().values()) == 130
