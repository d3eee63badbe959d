"""The archive graph, the selection policy, and the mutation operator."""

from __future__ import annotations

import math

import pytest
from autorec.agents import CandidateSummary, ProposalContext, load_proposer
from autorec.agents.graph import (
    ArchiveGraph,
    SelectionPolicy,
    distance,
    field_ranges,
    rounded,
    seeded_rng,
)
from autorec.agents.mutation import MutationProposer, mutate

from autorec.space import candidate_hash, load_space

SCHEMA = {
    "type": "object",
    "properties": {
        "model": {"enum": ["a", "b", "c"], "type": "string"},
        "width": {"type": "integer", "minimum": 0, "maximum": 100},
        "lr": {"type": "number", "minimum": 1e-4, "maximum": 1e-1},
    },
}


def node(i, status="done", fitness=0.0, parents=(), operator="tpe", error=None, **params):
    params = {"model": "a", "width": 10, "lr": 1e-3, **params}
    return CandidateSummary(i, params, status, fitness, {}, operator, list(parents), 0, error)


def mixed_archive():
    return [
        node(1, fitness=0.0, operator="reference"),
        node(2, status="failed", fitness=None, parents=[1], error="NaN loss", width=11),
        node(3, status="invalid", fitness=None, parents=[1], error="width: too big", width=999),
        node(4, status="duplicate", fitness=None, parents=[1], error="duplicate of candidate 1"),
        node(5, status="pending", fitness=None, parents=[1], width=12),
        node(6, status="running", fitness=None, parents=[1], width=13),
        node(7, fitness=0.5, parents=[1], operator="llm:refine", width=14),
        node(
            8, status="done", fitness=float("nan"), width=15
        ),  # a non-finite fitness is no fitness
        node(9, fitness=0.2, parents=[7], operator="mutate", width=16),
    ]


def test_selection_never_returns_unfinished_or_failed_nodes():
    graph = ArchiveGraph(mixed_archive(), SCHEMA)
    for tournament, explore in ((1, 0.5), (3, 2.0)):  # a large bonus tempts it to the leaves
        policy = SelectionPolicy(tournament=tournament, explore=explore)
        chosen = {policy.select(graph, seeded_rng(0, "t", i)).id for i in range(300)}
        assert chosen <= {1, 7, 9}
        assert chosen == {1, 7, 9} if tournament == 1 else chosen == {9}


def test_no_selectable_node_selects_nothing():
    archive = [node(1, status="pending", fitness=None), node(2, status="failed", fitness=None)]
    assert SelectionPolicy().select(ArchiveGraph(archive), seeded_rng(0)) is None


def test_exploration_bonus_prefers_an_unexpanded_node_over_an_equally_fit_expanded_one():
    archive = [
        node(1, fitness=0.3, width=1),
        node(2, fitness=0.3, width=2),
        *[
            node(10 + i, status="failed", fitness=None, parents=[1], error="x", width=20 + i)
            for i in range(3)
        ],
    ]
    graph = ArchiveGraph(archive, SCHEMA)
    assert graph.expansions(1) == 3 and graph.expansions(2) == 0
    policy = SelectionPolicy(tournament=4, explore=0.5)
    assert {policy.select(graph, seeded_rng(s)).id for s in range(50)} == {2}
    # Without the bonus the tie goes to the older node: the bonus is what made the difference.
    assert SelectionPolicy(tournament=4, explore=0.0).select(graph, seeded_rng(0)).id == 1


def test_fitter_nodes_win_when_expansion_is_equal():
    archive = [node(i, fitness=f, width=i) for i, f in enumerate([0.1, 0.9, 0.5], start=1)]
    graph = ArchiveGraph(archive, SCHEMA)
    policy = SelectionPolicy(tournament=3, explore=0.5)
    assert policy.select(graph, seeded_rng(1)).id == 2
    scores = policy.scores(graph)
    assert scores[2] > scores[3] > scores[1]
    # A small tournament still lets weaker nodes win sometimes.
    small = SelectionPolicy(tournament=1, explore=0.5)
    assert {small.select(graph, seeded_rng(s)).id for s in range(40)} == {1, 2, 3}


def test_selection_is_seeded():
    graph = ArchiveGraph([node(i, fitness=i / 10, width=i) for i in range(1, 12)], SCHEMA)
    policy = SelectionPolicy(tournament=3)

    def picks(seed):
        return [policy.select(graph, seeded_rng(seed, "select", i)).id for i in range(30)]

    assert picks(5) == picks(5)
    assert picks(5) != picks(6)


def test_edges_children_and_retrieval():
    graph = ArchiveGraph(mixed_archive(), SCHEMA)
    assert (1, 7, "llm:refine") in graph.edges() and (7, 9, "mutate") in graph.edges()
    assert graph.expansions(1) == 6  # failed, invalid, duplicate, pending and running count too
    assert [c.id for c in graph.finished_children(1)] == [2, 3, 7]
    assert [n.id for n in graph.top(5)] == [7, 9, 1]
    assert [n.id for n in graph.top(5, exclude=[7])] == [9, 1]
    assert [(n.id, n.error) for n in graph.failures(3)] == [(3, "width: too big"), (2, "NaN loss")]
    assert graph.best().id == 7
    assert graph.contains({"model": "a", "width": 14, "lr": 1e-3})
    assert not graph.contains({"model": "a", "width": 77, "lr": 1e-3})


def test_a_reply_copying_a_shown_rounded_float_is_a_near_duplicate():
    archive = mixed_archive()
    archive[0].params["lr"] = 0.00025264732377173723  # a TPE draw's full precision
    graph = ArchiveGraph(archive, SCHEMA)
    copied = {**archive[0].params, "lr": 0.0002526}  # what a prompt shows, and a model copies
    assert graph.contains(copied)
    assert not graph.contains({**archive[0].params, "lr": 0.0002531})  # a real step away
    assert rounded({"lr": 0.00025264732377, "depth": 3, "xs": [1.23456789, 0.0]}) == {
        "lr": 0.0002526, "depth": 3, "xs": [1.235, 0.0]}


def test_stagnation_counts_finished_candidates_since_the_last_new_best():
    fits = [0.0, 0.4, 0.1, 0.3, 0.2]
    graph = ArchiveGraph([node(i, fitness=f, width=i) for i, f in enumerate(fits, start=1)])
    assert graph.stagnation() == 3


def test_distance_scales_numbers_by_range_and_counts_categories_as_zero_or_one():
    ranges = field_ranges(SCHEMA)
    a = {"model": "a", "width": 0, "lr": 1e-3}
    assert distance(a, a, ranges) == 0
    assert distance(a, {**a, "model": "b"}, ranges) == pytest.approx(1 / 3)
    assert distance(a, {**a, "width": 50}, ranges) == pytest.approx(0.5 / 3)
    # lr spans three decades, so it is compared on a log scale: 1e-3 -> 1e-2 is a third of it.
    assert distance(a, {**a, "lr": 1e-2}, ranges) == pytest.approx((1 / 3) / 3)
    assert distance(a, {"model": "a"}, ranges) == pytest.approx(2 / 3)  # missing fields count 1


def test_neighbours_are_the_nearest_finished_nodes():
    archive = [
        node(1, fitness=0.0, width=10),
        node(2, fitness=0.1, width=12),
        node(3, fitness=0.2, width=60),
        node(4, fitness=0.3, width=11, model="b"),
        node(5, status="failed", fitness=None, width=10, error="x"),
    ]
    graph = ArchiveGraph(archive, SCHEMA)
    assert [n.id for n in graph.neighbours(graph.nodes[1], 3)] == [2, 3, 4]
    assert [n.id for n in graph.neighbours(graph.nodes[1], 1)] == [2]


def test_mutation_stays_inside_the_schema_and_changes_one_or_two_fields():
    space = load_space("architecture")
    schema = space.schema()
    ranges = field_ranges(schema)
    parent = space.reference().model_dump(mode="json")
    rng = seeded_rng(0, "mutate-test")
    changed_counts = set()
    for _ in range(300):
        child, notes = mutate(parent, ranges, rng)
        changed = [k for k in parent if child[k] != parent[k]]
        assert 1 <= len(notes) <= 2 and len(changed) <= 2
        changed_counts.add(len(changed))
        for key, value in child.items():
            prop = schema["properties"][key]
            if "enum" in prop:
                assert value in prop["enum"]
            else:
                assert prop["minimum"] <= value <= prop["maximum"], (key, value)
                if prop["type"] == "integer":
                    assert isinstance(value, int)
    assert changed_counts >= {1, 2}


def test_mutation_proposer_makes_new_valid_children_of_selected_parents():
    space = load_space("architecture")
    reference = space.reference().model_dump(mode="json")
    archive = [CandidateSummary(1, reference, "done", 0.0, {}, "reference", [], 0)]
    proposer = load_proposer("tpe", space)  # the registry's proposers and this one coexist
    assert proposer.name == "tpe"
    mutation = MutationProposer(space, seed=0)
    context = ProposalContext(space, 1, archive, None, seed=0)
    proposals = mutation.propose(context, 5)
    assert len(proposals) == 5
    hashes = {candidate_hash(p.params) for p in proposals}
    assert len(hashes) == 5 and candidate_hash(reference) not in hashes
    for proposal in proposals:
        assert proposal.operator == "mutate" and proposal.parents == [1]
        assert space.validate(proposal.params).model_dump(mode="json") == proposal.params
        assert proposal.rationale.startswith("mutate: ")
    # Seeded: a fresh proposer with the same seed repeats; a restored one continues.
    again = MutationProposer(space, seed=0).propose(context, 5)
    assert [p.params for p in again] == [p.params for p in proposals]
    resumed = MutationProposer(space, seed=0)
    resumed.load_state_dict(mutation.state_dict())
    assert [p.params for p in resumed.propose(context, 2)] == [
        p.params for p in mutation.propose(context, 2)
    ]


def test_numeric_enum_mutation_moves_along_the_ladder():
    ranges = field_ranges(
        {"properties": {"d": {"enum": [1, 2, 4, 8, 16, 32, 64], "type": "integer"}}}
    )
    rng = seeded_rng(3)
    steps = []
    for _ in range(200):
        child, _ = mutate({"d": 8}, ranges, rng, fields=1)
        steps.append(child["d"])
    assert set(steps) <= {1, 2, 4, 16, 32, 64} and 8 not in steps
    assert steps.count(4) + steps.count(16) > 0.7 * len(steps)
    assert not math.isnan(sum(steps))
