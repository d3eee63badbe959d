"""Group quality gaps and the leakage probe, on cases with known answers."""

import math

import numpy as np
import pytest
import torch

from autorec.beyond_accuracy import groups as G


def test_auc_gap_between_two_groups():
    # Group 1 is ranked perfectly (AUC 1); group 2 exactly backwards (AUC 0). Group 0 unknown.
    scores = np.array([0.9, 0.1, 0.2, 0.8, 0.5, 0.5])
    labels = np.array([1, 0, 1, 0, 1, 0])
    groups = np.array([1, 1, 2, 2, 0, 0])
    per_group = G.auc_by_group(scores, labels, groups, min_rows=2)
    assert per_group == {1: 1.0, 2: 0.0}
    assert G.quality_gap(per_group) == 1.0


def test_small_or_single_label_groups_are_left_out():
    scores = np.array([0.9, 0.1, 0.2, 0.8, 0.3])
    labels = np.array([1, 0, 1, 1, 1])
    groups = np.array([1, 1, 2, 2, 3])
    per_group = G.auc_by_group(scores, labels, groups, min_rows=2)
    assert per_group[1] == 1.0 and math.isnan(per_group[2]) and 3 not in per_group
    assert math.isnan(G.quality_gap(per_group))  # one measurable group: no gap


def test_hit_rate_gap_over_age_buckets_is_max_minus_min():
    ranks = np.array([0, 3, 12, 20, 5, 40, 1, 9])
    groups = np.array([1, 1, 1, 1, 2, 2, 3, 3])
    per_group = G.hit_rate_by_group(ranks, groups, k=10, min_users=2)
    assert per_group == {1: 0.5, 2: 0.5, 3: 1.0}
    assert G.quality_gap(per_group) == 0.5


def test_probe_recovers_a_planted_attribute_and_not_noise():
    g = torch.Generator().manual_seed(0)
    groups = torch.randint(1, 3, (400,), generator=g)
    noise = torch.randn(400, 8, generator=g)
    planted = noise.clone()
    planted[:, 0] += 3.0 * (groups == 1)  # one column separates the groups
    assert G.probe_leakage(planted, groups) > 0.95
    assert abs(G.probe_leakage(noise, groups) - 0.5) < 0.1


def test_probe_reduces_wide_representations_and_skips_unknown_users():
    g = torch.Generator().manual_seed(1)
    groups = torch.randint(0, 3, (300,), generator=g)  # a third unknown
    wide = torch.randn(300, 200, generator=g)
    wide[:, :5] += 4.0 * (groups == 2).unsqueeze(1)
    assert G.probe_leakage(wide, groups) > 0.9


def test_probe_needs_two_groups():
    assert math.isnan(G.probe_leakage(torch.randn(10, 3), torch.ones(10, dtype=torch.long)))
