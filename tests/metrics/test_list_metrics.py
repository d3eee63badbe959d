"""Diversity of top-k lists and the two re-rankers, on lists small enough to check by hand."""

import math

import pytest
import torch

from autorec.beyond_accuracy import lists as L

# Items 1..5 over genres A, B, C (columns 0, 1, 2); row 0 is padding.
GENRES = torch.tensor(
    [
        [0, 0, 0],  # 0 padding
        [1, 0, 0],  # 1: A
        [1, 1, 0],  # 2: A B
        [0, 1, 0],  # 3: B
        [0, 0, 1],  # 4: C
        [1, 0, 0],  # 5: A
    ],
    dtype=torch.bool,
)


def test_genre_counts_and_coverage():
    lists = torch.tensor([[1, 5, 0], [2, 4, 3]])  # {A} and {A, B, C}
    assert L.genres_per_list(lists, GENRES) == pytest.approx(2.0)  # (1 + 3) / 2
    assert L.genre_coverage(lists, GENRES) == pytest.approx(2.0 / 3)


def test_empty_lists_do_not_count():
    lists = torch.tensor([[4, 0], [0, 0]])
    assert L.genres_per_list(lists, GENRES) == 1.0
    assert math.isnan(L.genres_per_list(torch.zeros(2, 2, dtype=torch.long), GENRES))


def test_intra_list_diversity_is_mean_pairwise_jaccard_distance():
    # List [1, 2, 4]: d(1,2) = 1 - 1/2, d(1,4) = 1, d(2,4) = 1 -> (0.5 + 1 + 1) / 3.
    # List [1, 5]: identical genre sets -> 0. List [3]: no pair, left out.
    lists = torch.tensor([[1, 2, 4], [1, 5, 0], [3, 0, 0]])
    assert L.intra_list_diversity(lists, GENRES) == pytest.approx((2.5 / 3 + 0.0) / 2)


def test_catalog_coverage_counts_distinct_items():
    lists = torch.tensor([[1, 2, 0], [2, 1, 3]])
    assert L.catalog_coverage(lists, num_items=5) == pytest.approx(3 / 5)


def test_top_k_breaks_ties_by_lower_id_and_stops_at_minus_infinity():
    inf = float("-inf")
    scores = torch.tensor([[inf, 1.0, 3.0, 3.0, inf, 0.5]])
    assert L.top_k(scores, 4).tolist() == [[2, 3, 1, 5]]
    assert L.top_k(scores, 6).tolist() == [[2, 3, 1, 5, 0, 0]]


def test_mmr_weight_zero_keeps_the_model_order():
    scores = torch.tensor([[float("-inf"), 5.0, 4.0, 3.0, 2.0, 1.0]])
    assert L.mmr_rerank(scores, GENRES, weight=0.0, k=3).tolist() == [[1, 2, 3]]


def test_mmr_trades_relevance_for_new_genres():
    # Relevance after min-max scaling over the pool: 1 -> 1, 5 -> 0.75, 2 -> 0.5, 4 -> 0.25,
    # 3 -> 0. At weight 0.5 the second pick scores 0.5*rel - 0.5*max-similarity:
    # 5: 0.375 - 0.5 = -0.125; 2: 0.25 - 0.25 = 0; 4: 0.125 - 0 = 0.125; 3: 0 - 0 = 0 -> item 4.
    scores = torch.tensor([[float("-inf"), 5.0, 3.0, 1.0, 2.0, 4.0]])
    assert L.mmr_rerank(scores, GENRES, weight=0.5, k=2).tolist() == [[1, 4]]
    plain = L.top_k(scores, 3)
    diverse = L.mmr_rerank(scores, GENRES, weight=0.5, k=3)
    assert L.intra_list_diversity(diverse, GENRES) > L.intra_list_diversity(plain, GENRES)


def test_target_genres_steers_the_number_of_genres():
    scores = torch.tensor([[float("-inf"), 5.0, 4.0, 3.0, 2.0, 1.0]])
    # Model order 1, 2, 3 covers {A, B}; target 1 keeps to A: items 1, 5, then nothing else
    # fits, so the best remaining (2) fills the last slot.
    assert L.target_genres_rerank(scores, GENRES, target=1, k=2).tolist() == [[1, 5]]
    wide = L.target_genres_rerank(scores, GENRES, target=3, k=3)
    assert L.genres_per_list(wide, GENRES) == 3  # 1 (A), 2 (B, new), then 4 (C, new)
    assert wide.tolist() == [[1, 2, 4]]


def test_list_ranks_read_the_reranked_list():
    lists = torch.tensor([[4, 1, 2], [3, 5, 1], [1, 2, 3]])
    targets = torch.tensor([2, 4, 5])
    model_ranks = torch.tensor([1, 0, 7])
    # In the list: its slot. Not in it: the model rank, but never inside the list (>= k = 3).
    assert L.list_ranks(lists, targets, model_ranks).tolist() == [2, 3, 7]


def test_rerankers_leave_slots_empty_rather_than_repeat_items():
    inf = float("-inf")
    scores = torch.tensor([[inf, 3.0, inf, 2.0, inf, inf]])  # only items 1 and 3 are candidates
    assert L.mmr_rerank(scores, GENRES, weight=0.5, k=4).tolist() == [[1, 3, 0, 0]]
    assert L.target_genres_rerank(scores, GENRES, target=2, k=4).tolist() == [[1, 3, 0, 0]]
