"""Fitness and Pareto dominance against values worked out by hand.

Every expected number below is written out as arithmetic on the inputs, not computed by the
functions under test, so a flipped sign, a dropped weight or a sum instead of a mean shows.
"""

import math

import pytest

from autorec.archive.pareto import non_dominated
from autorec.fitness import (
    candidate_fitness,
    member_fitness,
    non_finite_objectives,
    raw_objectives,
    relative_gain,
)
from autorec.space import Objective

AUC = Objective(name="valid_auc", direction="max")
LOGLOSS = Objective(name="valid_logloss", direction="min")
PARAMS = Objective(name="params", direction="min", weight=0.05)


def test_a_maximised_objective_gains_when_it_rises():
    assert member_fitness({"valid_auc": 0.80}, {"valid_auc": 0.75}, [AUC]) == pytest.approx(
        (0.80 - 0.75) / 0.75
    )
    assert member_fitness({"valid_auc": 0.70}, {"valid_auc": 0.75}, [AUC]) == pytest.approx(
        -0.05 / 0.75
    )


def test_a_minimised_objective_gains_when_it_falls():
    assert member_fitness({"valid_logloss": 0.45}, {"valid_logloss": 0.50}, [LOGLOSS]) == (
        pytest.approx(0.1)
    )
    assert member_fitness({"valid_logloss": 0.55}, {"valid_logloss": 0.50}, [LOGLOSS]) == (
        pytest.approx(-0.1)
    )


def test_the_reference_scores_zero_on_itself():
    metrics = {"valid_auc": 0.75, "valid_logloss": 0.5, "params": 1e5}
    assert member_fitness(metrics, metrics, [AUC, LOGLOSS, PARAMS]) == 0.0


def test_weights_scale_each_objective():
    # README's own example: 1% better AUC, half the parameters at weight 0.05 -> 0.01 + 0.025.
    candidate = {"valid_auc": 0.7575, "params": 50_000}
    reference = {"valid_auc": 0.75, "params": 100_000}
    assert member_fitness(candidate, reference, [AUC, PARAMS]) == pytest.approx(0.035)
    heavy = Objective(name="params", direction="min", weight=2.0)
    assert member_fitness(candidate, reference, [AUC, heavy]) == pytest.approx(0.01 + 2 * 0.5)


def test_a_negative_or_zero_reference_keeps_the_direction():
    # Scaled by |ref|: -1 is better than -2 when maximising, whatever the sign of the reference.
    assert relative_gain(-1.0, -2.0, "max") == pytest.approx(0.5)
    assert relative_gain(-3.0, -2.0, "min") == pytest.approx(0.5)
    # A zero reference is scaled by 1 rather than dividing by zero.
    assert relative_gain(0.25, 0.0, "max") == pytest.approx(0.25)
    assert relative_gain(0.25, 0.0, "min") == pytest.approx(-0.25)


def test_fitness_is_the_mean_over_the_suite():
    reference = {"fm": {"valid_auc": 0.5, "params": 100}, "deepfm": {"valid_auc": 0.8, "params": 200}}
    candidate = {"fm": {"valid_auc": 0.55, "params": 100}, "deepfm": {"valid_auc": 0.8, "params": 100}}
    # fm: +0.1 on AUC, 0 on params; deepfm: 0 on AUC, +0.5 * 0.05 on params.
    expected = (0.1 + 0.025) / 2
    assert candidate_fitness(candidate, reference, [AUC, PARAMS]) == pytest.approx(expected)
    # Each member is compared with the reference on that same member, not on another one.
    swapped = {"fm": candidate["deepfm"], "deepfm": candidate["fm"]}
    assert candidate_fitness(swapped, reference, [AUC, PARAMS]) != pytest.approx(expected)


def test_raw_objectives_are_the_suite_means():
    members = {"a": {"valid_auc": 0.6, "params": 10, "auc": 0.9}, "b": {"valid_auc": 0.8, "params": 30}}
    assert raw_objectives(members, [AUC, PARAMS]) == pytest.approx({"valid_auc": 0.7, "params": 20})


def test_a_failed_gate_means_no_fitness():
    reference = {"k": {"speed": 1.0, "correct": 1.0}}
    speed = [Objective(name="speed", direction="max")]
    fast_and_right = {"k": {"speed": 2.0, "correct": 1.0}}
    fast_and_wrong = {"k": {"speed": 2.0, "correct": 0.0}}
    no_gate_metric = {"k": {"speed": 2.0}}
    assert candidate_fitness(fast_and_right, reference, speed, ["correct"]) == pytest.approx(1.0)
    assert candidate_fitness(fast_and_wrong, reference, speed, ["correct"]) is None
    assert candidate_fitness(no_gate_metric, reference, speed, ["correct"]) is None
    # Without the gate the same metrics would have scored: the gate is what refused them.
    assert candidate_fitness(fast_and_wrong, reference, speed) == pytest.approx(1.0)


def test_one_gate_failing_on_one_member_fails_the_whole_candidate():
    speed = [Objective(name="speed", direction="max")]
    reference = {"a": {"speed": 1.0, "ok": 1}, "b": {"speed": 1.0, "ok": 1}}
    candidate = {"a": {"speed": 3.0, "ok": 1}, "b": {"speed": 3.0, "ok": 0}}
    assert candidate_fitness(candidate, reference, speed, ["ok"]) is None


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, None, "high"])
def test_a_missing_or_non_finite_objective_means_no_fitness(bad):
    reference = {"m": {"valid_auc": 0.75}}
    candidate = {"m": {} if bad is None else {"valid_auc": bad}}
    assert candidate_fitness(candidate, reference, [AUC]) is None
    assert non_finite_objectives(candidate["m"], [AUC, PARAMS]) == ["valid_auc", "params"]


def test_a_failing_reference_leaves_no_yardstick():
    candidate = {"a": {"valid_auc": 0.8}, "b": {"valid_auc": 0.8}}
    # The reference has no result on member b (it failed there): no fitness for anyone.
    assert candidate_fitness(candidate, {"a": {"valid_auc": 0.75}}, [AUC]) is None
    # The reference's objective is NaN on a member.
    reference = {"a": {"valid_auc": 0.75}, "b": {"valid_auc": math.nan}}
    assert candidate_fitness(candidate, reference, [AUC]) is None
    assert candidate_fitness({}, reference, [AUC]) is None  # and no members at all: none either


def test_only_objectives_count_never_the_reported_test_metrics():
    reference = {"m": {"valid_auc": 0.75, "auc": 0.70}}
    better_on_test_only = {"m": {"valid_auc": 0.75, "auc": 0.99}}
    assert candidate_fitness(better_on_test_only, reference, [AUC]) == 0.0


def test_pareto_front_with_mixed_directions():
    # (valid_auc: max, params: min)
    points = [
        (0.80, 100),  # 0: on the front
        (0.78, 50),   # 1: on the front (smallest)
        (0.77, 60),   # 2: dominated by 1 (lower AUC, more params)
        (0.80, 120),  # 3: dominated by 0 (same AUC, more params)
        (0.81, 200),  # 4: on the front (best AUC)
        (0.78, 50),   # 5: equal to 1: equals do not dominate each other
    ]
    assert non_dominated(points, ["max", "min"]) == [4, 0, 1, 5]
    # Read the other way round (AUC minimised, params maximised): 2 beats 1 and 5 on both, 3 beats
    # 0, and 4 has the most params.
    assert non_dominated(points, ["min", "max"]) == [2, 3, 4]


def test_pareto_rejects_an_unknown_direction():
    with pytest.raises(ValueError, match="'max' or 'min'"):
        non_dominated([(1.0,)], ["maximise"])
