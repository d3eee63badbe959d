"""The LLM agent: modes, parsing into proposals, duplicates, repeatability, best-of-n, and the
real local model (slow)."""

from __future__ import annotations

import importlib.util
import json
import time
from importlib import resources

import pytest
from autorec.agents import CandidateSummary, ProposalContext, load_proposer, proposer_names
from autorec.agents.agent import LLMProposer
from autorec.agents.graph import ArchiveGraph, seeded_rng
from autorec.agents.llm.base import Completion, LLMBackend, LLMError
from autorec.agents.prompts import MODES

from autorec.errors import ConfigError
from autorec.space import candidate_hash, load_space


class Scripted(LLMBackend):
    """A test double: replies from a queue (cycled), keeping every request it was sent."""

    def __init__(self, texts, name="local"):
        super().__init__("scripted-model")
        self.name = name
        self.constrained = name == "local"  # like the real local backend
        self.texts = list(texts)
        self.requests = []

    def complete(self, messages, schema=None, *, max_tokens=512, temperature=0.0, seed=None):
        self.requests.append(
            {
                "messages": messages,
                "schema": schema,
                "temperature": temperature,
                "seed": seed,
                "max_tokens": max_tokens,
            }
        )
        text = self.texts[(len(self.requests) - 1) % len(self.texts)]
        if isinstance(text, Exception):
            raise text
        tokens_in = sum(len(m["content"]) for m in messages) // 3
        return Completion(text, self.name, self.model, messages, tokens_in=tokens_in, tokens_out=40)


@pytest.fixture(scope="module")
def space():
    return load_space("architecture")


def params(space, **changes):
    return space.validate({**space.reference().model_dump(mode="json"), **changes}).model_dump(
        mode="json"
    )


def reply(space, rationale="a reason", **changes):
    return json.dumps({**params(space, **changes), "rationale": rationale})


def done(i, p, fitness, parents=(), operator="tpe"):
    return CandidateSummary(
        i, p, "done", fitness, {"auc": 0.75 + fitness}, operator, list(parents), 1
    )


def context(space, archive, seed=0):
    return ProposalContext(space, 1, list(archive), None, seed)


def rich_archive(space):
    return [
        done(1, params(space), 0.0, operator="reference"),
        done(2, params(space, lr=0.003), 0.02, parents=[1], operator="llm:refine"),
        done(3, params(space, model="fm"), 0.03),
        CandidateSummary(
            4,
            params(space, epochs=9),
            "failed",
            None,
            {},
            "mutate",
            [2],
            2,
            "TrainingError: NaN loss in epoch 3",
        ),
    ]


def mode_of_prompt(messages):
    first = messages[1]["content"].splitlines()[0]
    for mode in MODES:
        source = resources.files("autorec.agents.prompt_templates").joinpath(f"{mode}.txt").read_text()
        if first == source.splitlines()[0]:
            return mode
    raise AssertionError(first)


def test_registry_and_options(space):
    assert {"agent", "best-of-n", "portfolio"} <= set(proposer_names())
    backend = Scripted([reply(space)])
    assert load_proposer("agent", space, backend=backend).name == "agent"
    assert load_proposer("best-of-n", space, backend=backend).name == "best-of-n"
    with pytest.raises(ConfigError, match="unknown option.*tempreature"):
        load_proposer("agent", space, backend=backend, tempreature=0.5)
    with pytest.raises(ConfigError, match="modes"):
        LLMProposer(space, backend=backend, modes="refine,think")
    with pytest.raises(ConfigError, match="temperature must be > 0"):
        load_proposer("best-of-n", space, backend=backend, temperature=0)
    with pytest.raises(ConfigError, match="top_k must be a number"):
        LLMProposer(space, backend=backend, top_k="many")


def test_a_valid_reply_becomes_a_proposal_of_the_selected_parent(space):
    archive = rich_archive(space)
    backend = Scripted([reply(space, "try a smaller lr", lr=0.0007, model="dcnv2")])
    agent = LLMProposer(space, seed=0, backend=backend, modes="refine")
    (proposal,) = agent.propose(context(space, archive), 1)
    assert proposal.error is None
    assert proposal.operator == "llm:refine"
    assert proposal.params == params(space, lr=0.0007, model="dcnv2")
    assert proposal.rationale == "try a smaller lr"
    assert len(proposal.parents) == 1 and proposal.parents[0] in (1, 2, 3)
    assert [c.text for c in proposal.llm_calls] == [backend.texts[0]]
    request = backend.requests[0]
    parent = next(c for c in archive if c.id == proposal.parents[0])
    assert json.dumps(parent.params, separators=(",", ":")) in request["messages"][1]["content"]
    assert "TrainingError: NaN loss in epoch 3" in request["messages"][1]["content"]
    assert request["schema"]["properties"]["rationale"]["maxLength"] == 120
    assert request["temperature"] == 0.0 and isinstance(request["seed"], int)
    assert agent.mode_stats()["refine"]["proposals"] == 1


def test_an_unusable_reply_is_an_invalid_proposal_with_its_reason_and_calls(space):
    archive = rich_archive(space)
    local = Scripted(["I would raise the learning rate."], name="local")
    (proposal,) = LLMProposer(space, backend=local).propose(context(space, archive), 1)
    assert proposal.error == "the reply contains no JSON object"
    assert proposal.params == {"raw": "I would raise the learning rate."}
    assert len(proposal.llm_calls) == 1  # local backends decode under the schema: no repairs

    remote = Scripted(['{"model": "fm", "lr": 3}'], name="openai")
    (proposal,) = LLMProposer(space, backend=remote).propose(context(space, archive), 1)
    assert proposal.error.startswith("lr: Input should be less than or equal to 0.1")
    assert proposal.params == {"model": "fm", "lr": 3}
    assert len(proposal.llm_calls) == 3  # the reply, then two repairs with the error fed back
    assert "lr: Input should be" in remote.requests[1]["messages"][-1]["content"]

    down = Scripted([LLMError("server unreachable")], name="openai")
    (proposal,) = LLMProposer(space, backend=down).propose(context(space, archive), 1)
    assert "server unreachable" in proposal.error and proposal.llm_calls == []


def test_a_repeated_candidate_is_asked_again_in_another_mode_then_mutated(space):
    archive = rich_archive(space)
    backend = Scripted([reply(space)])  # the greedy model insists on the reference
    agent = LLMProposer(space, seed=1, backend=backend, modes="refine")
    (proposal,) = agent.propose(context(space, archive), 1)
    assert len(backend.requests) == 3  # 1 + retries
    modes = [mode_of_prompt(r["messages"]) for r in backend.requests]
    assert modes[0] == "refine" and len(set(modes)) == 3
    assert "was already evaluated" in backend.requests[1]["messages"][1]["content"]
    # Greedy first; the retries sample (seeded per call), so a repeat is not simply repeated.
    assert [r["temperature"] for r in backend.requests] == [0.0, 0.8, 0.8]
    assert len({r["seed"] for r in backend.requests}) == 3
    assert proposal.operator.endswith("+mutate") and proposal.operator.startswith("llm:")
    assert proposal.error is None and "[mutated: " in proposal.rationale
    assert candidate_hash(proposal.params) not in {candidate_hash(c.params) for c in archive}
    assert space.validate(proposal.params).model_dump(mode="json") == proposal.params
    assert len(proposal.llm_calls) == 3
    stats = agent.mode_stats()
    assert sum(s["duplicates"] for s in stats.values()) == 3
    assert sum(s["fallbacks"] for s in stats.values()) == 1


def test_a_batch_never_repeats_itself(space):
    backend = Scripted([reply(space, lr=0.002)])
    proposals = LLMProposer(space, backend=backend).propose(context(space, rich_archive(space)), 3)
    hashes = [candidate_hash(p.params) for p in proposals]
    assert len(set(hashes)) == 3
    assert proposals[0].params == params(space, lr=0.002)


def test_modes_follow_the_archive(space):
    agent = LLMProposer(space, backend=Scripted([reply(space)]))

    def modes_for(archive, n=200):
        graph = ArchiveGraph(archive, space.schema())
        return [agent.choose_mode(graph, seeded_rng(0, "m", i), i) for i in range(n)]

    assert set(modes_for([])) == {"restart"}
    one = [done(1, params(space), 0.0, operator="reference")]
    assert set(modes_for(one)) == {"refine", "restart"}
    rich = rich_archive(space)
    assert set(modes_for(rich)) == set(MODES)
    # A small archive restarts more often than a large, improving one.
    improving = [done(i, params(space, embedding_dim=4 + i), i / 100) for i in range(1, 12)]
    assert modes_for(one).count("restart") > modes_for(improving).count("restart") + 30
    # Stagnation (no new best for a while) favours restart again.
    stale = [done(1, params(space), 0.5)] + [
        done(i, params(space, embedding_dim=4 + i), 0.1) for i in range(2, 12)
    ]
    assert modes_for(stale).count("restart") > modes_for(improving).count("restart") + 20


def test_a_mode_schedule_cycles_and_each_mode_uses_its_template(space):
    archive = rich_archive(space)
    replies = [reply(space, lr=0.0015 + i / 1000) for i in range(8)]
    backend = Scripted(replies)
    agent = LLMProposer(space, backend=backend, modes="refine,compare,combine,restart")
    proposals = agent.propose(context(space, archive), 8)
    assert [mode_of_prompt(r["messages"]) for r in backend.requests] == list(MODES) * 2
    assert [p.operator for p in proposals] == [f"llm:{m}" for m in MODES] * 2
    assert [len(p.parents) for p in proposals[:4]] == [1, 1, 2, 0]


def simulate(space, seed, steps, agent=None, archive=None, replies=None):
    """Propose one at a time; the 'evaluation' is a closed-form score; returns what was sent."""
    replies = replies or [
        reply(space, f"r{i}", lr=0.0005 * (i + 1), embedding_dim=8 + 4 * i) for i in range(6)
    ]
    backend = agent.backend if agent else Scripted(replies)
    agent = agent or LLMProposer(space, seed=seed, backend=backend)
    archive = (
        archive if archive is not None else [done(1, params(space), 0.0, operator="reference")]
    )
    made = []
    for _ in range(steps):
        (proposal,) = agent.propose(context(space, archive, seed=seed), 1)
        made.append(
            (
                proposal.operator,
                proposal.parents,
                proposal.params,
                proposal.rationale,
                [c.prompt for c in proposal.llm_calls],
            )
        )
        if proposal.error is None:
            fitness = -abs(proposal.params["lr"] - 0.004) * 10
            archive.append(
                done(
                    len(archive) + 1, proposal.params, fitness, proposal.parents, proposal.operator
                )
            )
    return made, agent, archive


def test_a_seeded_agent_repeats_itself_exactly(space):
    first, _, _ = simulate(space, seed=3, steps=8)
    second, _, _ = simulate(space, seed=3, steps=8)
    assert first == second
    other, _, _ = simulate(space, seed=4, steps=8)
    assert [m[0] for m in other] != [m[0] for m in first] or [m[4] for m in other] != [
        m[4] for m in first
    ]


def test_a_resumed_agent_continues_exactly(space):
    _, uninterrupted, archive = simulate(space, seed=5, steps=4)
    state = json.loads(json.dumps(uninterrupted.state_dict()))
    resumed = LLMProposer(space, seed=5, backend=Scripted(uninterrupted.backend.texts))
    resumed.backend.requests = list(uninterrupted.backend.requests)  # the replies queue goes on
    resumed.load_state_dict(state)
    assert resumed.mode_stats() == uninterrupted.mode_stats()
    a, _, _ = simulate(space, 5, 4, agent=uninterrupted, archive=list(archive))
    b, _, _ = simulate(space, 5, 4, agent=resumed, archive=list(archive))
    assert a == b


def test_best_of_n_ignores_the_archive(space):
    texts = [reply(space, lr=0.001 * (i + 1)) for i in range(4)]
    empty, rich = Scripted(texts), Scripted(texts)
    a = load_proposer("best-of-n", space, seed=2, backend=empty).propose(context(space, []), 4)
    b = load_proposer("best-of-n", space, seed=2, backend=rich).propose(
        context(space, rich_archive(space)), 4
    )
    assert [p.params for p in a] == [p.params for p in b]
    assert [r["messages"] for r in empty.requests] == [r["messages"] for r in rich.requests]
    assert all(r["messages"] == empty.requests[0]["messages"] for r in empty.requests)
    assert mode_of_prompt(empty.requests[0]["messages"]) == "restart"
    assert all(p.parents == [] and p.operator == "best-of-n" for p in b)
    assert {r["temperature"] for r in rich.requests} == {0.8}
    assert len({r["seed"] for r in rich.requests}) == 4  # independent samples
    prompt = "".join(m["content"] for m in rich.requests[0]["messages"])
    assert "NaN loss" not in prompt and "fitness 0.02" not in prompt
    # A duplicate is left to the engine to mark: best-of-n has no memory to avoid it with.
    (again,) = load_proposer("best-of-n", space, backend=Scripted([reply(space)])).propose(
        context(space, rich_archive(space)), 1
    )
    assert again.params == params(space) and again.error is None


def test_the_driver_records_the_agents_proposals_and_calls(space, tmp_path):
    """The agent in the real engine loop (no Ray): invalid replies and LLM calls are stored."""
    from autorec.archive import Archive
    from autorec.engine.driver import SearchDriver
    from autorec.engine.worker import FINAL
    from autorec.search_config import SearchConfig

    config = SearchConfig(space="architecture", proposer="agent", budget=6, seed=0)
    archive = Archive(tmp_path / "runs.db")
    run = archive.create_run("architecture", "agent", config=config.model_dump(mode="json"))
    backend = Scripted(["no idea", reply(space, lr=0.004), reply(space, model="fm")])
    proposer = load_proposer("agent", space, seed=0, backend=backend, operators="llm")
    driver = SearchDriver(config, archive, space, proposer, run.id)
    for i in range(20):
        trial = driver.next_trial(f"t{i}")
        if trial is None:  # nothing admitted this round (an invalid reply): ask again
            continue
        if not isinstance(trial, dict):
            break
        lr = trial["params"]["lr"]
        driver.complete(f"t{i}", {"valid_auc": 0.7 + lr, "auc": 0.7 + lr, "params": 1000.0, FINAL: 1}, False)
    driver.interrupted()  # what run_tune does when Tune stops: the proposer's state is flushed
    rows = archive.candidates(run.id)
    statuses = {r.status for r in rows}
    assert "invalid" in statuses and "done" in statuses
    invalid = next(r for r in rows if r.status == "invalid")
    assert invalid.error == "the reply contains no JSON object" and invalid.operator.startswith(
        "llm:"
    )
    assert archive.llm_calls_for(invalid.id)[0].response == "no idea"
    assert archive.llm_totals(run.id)["tokens_out"] > 0
    state = archive.load_proposer_state(run.id)
    assert state["proposer"] == "agent" and state["counts"]["llm"] >= 3
    assert [r.operator for r in rows][0] == "reference"
    assert driver.evaluations_finished == 6


LOCAL = importlib.util.find_spec("autorec.agents.llm.local") is not None


@pytest.mark.slow
@pytest.mark.skipif(
    not LOCAL, reason="agents/llm/local.py (the local SmolLM2 backend) is not there yet"
)
def test_the_local_model_proposes_valid_architecture_candidates(space, tmp_path_factory):
    from autorec.agents.llm import load_backend

    backend = load_backend("local", cache_dir=str(tmp_path_factory.mktemp("llm-cache")))
    backend.load()
    agent = LLMProposer(space, seed=0, backend=backend, modes="refine,restart", retries=0)
    archive = rich_archive(space)
    started = time.monotonic()
    proposals = agent.propose(context(space, archive), 2)
    elapsed = time.monotonic() - started
    assert [p.error for p in proposals] == [None, None]
    assert [p.operator.split("+")[0] for p in proposals] == ["llm:refine", "llm:restart"]
    for proposal in proposals:
        assert space.validate(proposal.params).model_dump(mode="json") == proposal.params
        assert candidate_hash(proposal.params) not in {candidate_hash(c.params) for c in archive}
    # At least one proposal is the model's own reply, not a mutation standing in for a repeat.
    written = [
        p for p in proposals
        if "+mutate" not in p.operator and p.params == space.validate(
            {k: v for k, v in json.loads(p.llm_calls[-1].text).items() if k != "rationale"}
        ).model_dump(mode="json")
    ]
    assert written, [(p.operator, p.llm_calls[-1].text) for p in proposals]
    for proposal in proposals:
        for call in proposal.llm_calls:
            assert call.backend == "local" and call.error is None
            assert call.tokens_in < 4_000  # a 135M model's context is small: prompts stay compact
    stats = agent.mode_stats()
    print(
        f"\nlocal model: {elapsed:.1f}s for 2 proposals;",
        {
            m: (s["calls"], s["max_tokens_in"], s["tokens_out"])
            for m, s in stats.items()
            if s["calls"]
        },
    )


def test_the_rationale_asked_for_follows_the_backend_unless_the_option_says_otherwise(space):
    from autorec.agents.llm.local import LocalBackend

    remote = LLMProposer(space, backend=Scripted([reply(space)], name="openai"))
    assert remote.schema["properties"]["rationale"]["maxLength"] == 120
    embedded = Scripted([reply(space)])
    embedded.rationale_chars = LocalBackend.rationale_chars  # the embedded model asks for less
    assert LLMProposer(space, backend=embedded).schema["properties"]["rationale"]["maxLength"] == 48
    none = LLMProposer(space, backend=embedded, rationale_chars=0)
    assert "rationale" not in none.schema["properties"]
    assert set(none.schema["required"]) == set(space.schema()["properties"])
    # A reply without a rationale is still a proposal.
    proposal = LLMProposer(space, backend=Scripted([json.dumps(params(space, lr=0.003))]),
                           rationale_chars=0).propose(context(space, [done(1, params(space), 0.0)]), 1)[0]
    assert proposal.error is None and proposal.params["lr"] == 0.003
