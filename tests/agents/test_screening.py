"""Screening: the portfolio spends an evaluation on another operator's proposal only when the
archive surrogate ranks it at least as high as TPE's own draw."""

from __future__ import annotations

import json

from autorec.agents import CandidateResult, CandidateSummary, ProposalContext, load_proposer
from autorec.agents.graph import field_ranges
from autorec.agents.surrogate import ArchiveSurrogate
from optuna.trial import TrialState

from tests.agents.test_portfolio import Bowl, Scripted, run, score


def node(cid, x, y, fitness, status="done"):
    return CandidateSummary(cid, {"x": x, "y": y}, status, fitness, {}, "tpe", [], 0)


def bowl_archive():
    """Nine finished candidates of the bowl (best at (1, -2)), a failure far away."""
    points = [(1.2, -1.8), (0.8, -2.3), (1.5, -2.5), (-3, 3), (-4, 4), (4, 4), (-4, -4), (3, 1),
              (-2, 0)]  # fmt: skip
    archive = [node(i + 1, x, y, score({"x": x, "y": y})) for i, (x, y) in enumerate(points)]
    archive.append(node(len(archive) + 1, 4.5, -4.5, None, status="failed"))
    return archive


def test_the_surrogate_prefers_the_region_of_the_best_candidates():
    surrogate = ArchiveSurrogate(bowl_archive(), field_ranges(Bowl().schema()))
    near_best, far = surrogate.score({"x": 1.0, "y": -2.0}), surrogate.score({"x": -3.5, "y": 3.5})
    assert near_best > 0 > far
    # A failure is evidence against its region: near it scores below an unexplored point.
    near_failure = surrogate.score({"x": 4.4, "y": -4.4})
    assert near_failure < surrogate.score({"x": -1.0, "y": -4.5})


def screening_agent(replies, **options):
    return load_proposer("agent", Bowl(), seed=0, backend=Scripted(replies),
                         tpe_n_startup_trials=3, screen_after=5, **options)  # fmt: skip


def propose_llm(portfolio, archive):
    """One proposal round in which the LLM leads the bandit."""
    portfolio.window.extend([("llm", 1.0)] * 3 + [("tpe", 0.0), ("mutate", 0.0)])
    return portfolio.propose(ProposalContext(Bowl(), 1, archive, None, 0), 1)


def test_a_weak_llm_proposal_is_stored_as_screened_and_tpes_draw_is_evaluated():
    portfolio = screening_agent([json.dumps({"x": -4.0, "y": 4.5, "rationale": "far off"})])
    archive = bowl_archive()
    screened, evaluated = propose_llm(portfolio, archive)
    assert screened.operator.startswith("llm") and screened.params == {"x": -4.0, "y": 4.5}
    assert screened.screened.startswith("screened: the archive surrogate ranks it below TPE")
    assert screened.llm_calls  # the LLM's call is still recorded, with the proposal
    assert evaluated.operator == "tpe" and evaluated.screened is None
    stats = portfolio.stats()
    assert stats["llm"]["screened"] == 1 and stats["llm"]["window_plays"] == 4  # a failed play
    assert stats["tpe"]["pending"] == 1 and stats["llm"]["pending"] == 0


def test_a_promising_llm_proposal_is_evaluated_and_tpes_draw_withdrawn():
    portfolio = screening_agent([json.dumps({"x": 1.0, "y": -2.0, "rationale": "the bowl's floor"})])
    (proposal,) = propose_llm(portfolio, bowl_archive())
    assert proposal.operator.startswith("llm") and proposal.screened is None
    study = portfolio.ops["tpe"].study
    # TPE drew a candidate for the comparison; it will never be evaluated, so it is failed
    # (ignored by the sampler) and forgotten, and may be proposed again later.
    assert study.trials[-1].state == TrialState.FAIL
    assert portfolio.ops["tpe"].trial_of == {}
    portfolio.observe(CandidateResult(99, proposal.params, "done", 0.0, {}, proposal.operator))
    assert portfolio.stats()["llm"]["window_mean"] > 0.75  # the new best is the LLM's reward


def test_no_screening_before_enough_results_or_when_switched_off():
    weak = [json.dumps({"x": -4.0, "y": 4.5, "rationale": "far off"})]
    few = bowl_archive()[:3]
    assert len(propose_llm(screening_agent(weak), few)) == 1
    assert len(propose_llm(screening_agent(weak, screen=False), bowl_archive())) == 1


def test_a_repeated_reply_is_a_failed_play_at_once():
    space = Bowl()
    known = {"x": 1.0, "y": -2.0}
    portfolio = load_proposer("agent", space, seed=0, operators="llm",
                              backend=Scripted([json.dumps({**known, "rationale": "r"})]))  # fmt: skip
    archive = [CandidateSummary(1, known, "done", 0.0, {}, "reference", [], 0)]
    (proposal,) = portfolio.propose(ProposalContext(space, 1, archive, None, 0), 1)
    # The LLM repeated the reference three times; mutation made a new candidate from it.
    assert proposal.operator.endswith("+mutate")
    stats = portfolio.stats()
    assert stats["llm"]["window_plays"] == 1 and stats["llm"]["window_mean"] == 0.0


def test_screening_keeps_a_seeded_search_reproducible():
    replies = [json.dumps({"x": 0.4 * i - 3, "y": 0.3 * i - 2, "rationale": "r"}) for i in range(20)]

    def sequence():
        made, _ = run(screening_agent(replies), Bowl(), 16, lambda p, op: score(p))
        return made

    first = sequence()
    assert first == sequence()
    assert any(f == "screened" for _, _, f in first)  # the scripted replies include weak ones
