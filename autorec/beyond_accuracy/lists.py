"""Top-k recommendation lists: their diversity, and two re-rankers that change it.

A batch of lists is a LongTensor [U, k] of item ids, best first; 0 marks an empty slot (a CTR
user with fewer than k candidate rows). Item genres are a bool matrix [num_items + 1, G] whose
row 0 (padding) is all False.

- genre coverage: the share of the catalogue's G genres one list touches, averaged over lists;
- genres per list: the same as a count (what DLCRec's control number sets);
- intra-list diversity: the mean pairwise Jaccard distance between the genre sets of a list's
  items (1 - |A n B| / |A u B|; two items without genres count as identical), averaged over
  lists of two items or more;
- catalogue coverage: distinct items over all lists / the catalogue's item count.

Re-rankers work on one score row per user (seen items already at -inf) over a pool of the
`pool` best-scored items:
- MMR (Carbonell & Goldstein, 1998) with genre Jaccard similarity: each pick maximises
  (1 - w) * relevance - w * (the largest similarity to an item already picked); relevance is the
  score min-max scaled within the user's pool. w = 0 is the model's own order.
- DLCRec's control number: a list should cover exactly `target` genres. Greedy in relevance
  order, an item that would take the list past `target` genres is skipped while another fits
  (when none fits, the one adding the fewest genres goes), and while the list covers fewer than
  `target` an item adding a new genre goes first.
"""

from __future__ import annotations

import torch

POOL = 50  # candidates a re-ranker chooses the k from: the model's best-scored items


def _genre_rows(lists: torch.Tensor, item_genres: torch.Tensor) -> torch.Tensor:
    """[U, k, G] float genre indicators of each slot (empty slots: all zero)."""
    return item_genres[lists.clamp(min=0)].float() * (lists > 0).unsqueeze(-1)


def genres_per_list(lists: torch.Tensor, item_genres: torch.Tensor) -> float:
    """Mean number of distinct genres in a non-empty list."""
    covered = _genre_rows(lists, item_genres).amax(dim=1).sum(dim=1)
    nonempty = (lists > 0).any(dim=1)
    return float(covered[nonempty].mean()) if nonempty.any() else float("nan")


def genre_coverage(lists: torch.Tensor, item_genres: torch.Tensor) -> float:
    """Mean share of the catalogue's genres a non-empty list covers."""
    total = int(item_genres.any(dim=0).sum())
    return genres_per_list(lists, item_genres) / total if total else float("nan")


def pairwise_jaccard(genres: torch.Tensor) -> torch.Tensor:
    """[..., n, n] Jaccard similarity of n genre indicator rows [..., n, G]; 1 where both empty."""
    genres = genres.float()
    inter = genres @ genres.transpose(-1, -2)
    sizes = genres.sum(dim=-1)
    union = sizes.unsqueeze(-1) + sizes.unsqueeze(-2) - inter
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(inter))


def intra_list_diversity(lists: torch.Tensor, item_genres: torch.Tensor) -> float:
    """Mean pairwise genre Jaccard distance within a list, over lists of two items or more."""
    real = lists > 0
    distance = 1.0 - pairwise_jaccard(_genre_rows(lists, item_genres))
    pairs = real.unsqueeze(-1) & real.unsqueeze(-2)
    pairs &= torch.ones_like(pairs[0]).triu(diagonal=1)
    counts = pairs.sum(dim=(1, 2))
    per_list = (distance * pairs).sum(dim=(1, 2)) / counts.clamp(min=1)
    keep = counts > 0
    return float(per_list[keep].mean()) if keep.any() else float("nan")


def catalog_coverage(lists: torch.Tensor, num_items: int) -> float:
    """Distinct recommended items / catalogue size (item ids 1..num_items)."""
    items = torch.unique(lists[lists > 0])
    return len(items) / num_items if num_items else float("nan")


def top_k(scores: torch.Tensor, k: int) -> torch.Tensor:
    """[U, k] ids of each row's k best finite scores (ties: lower id first), 0 past the finite."""
    k = min(k, scores.shape[1])
    # Stable descending sort keeps the lower id first among equal scores.
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :k]
    finite = torch.isfinite(scores.gather(1, order))
    return torch.where(finite, order, torch.zeros_like(order))


def _pool(scores: torch.Tensor, pool: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pool ids [U, P], relevance min-max scaled per row to [0, 1] (-inf where not finite)."""
    ids = top_k(scores, pool)
    raw = scores.gather(1, ids)
    valid = (ids > 0) & torch.isfinite(raw)
    safe = torch.where(valid, raw, torch.zeros_like(raw))
    low = torch.where(valid, safe, torch.full_like(safe, float("inf"))).amin(dim=1, keepdim=True)
    high = torch.where(valid, safe, torch.full_like(safe, float("-inf"))).amax(dim=1, keepdim=True)
    span = (high - low).clamp(min=1e-12)
    relevance = torch.where(valid, (safe - low) / span, torch.full_like(safe, float("-inf")))
    return ids, relevance, valid


def _pick(chosen: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """Index of each row's best value among the pool slots not chosen yet; -1 where none is
    left (a user with fewer candidates than list slots)."""
    best = torch.where(chosen, torch.full_like(value, float("-inf")), value).argmax(dim=1)
    return torch.where(chosen.all(dim=1), torch.full_like(best, -1), best)


def _collect(ids: torch.Tensor, picks: list[torch.Tensor], valid: torch.Tensor) -> torch.Tensor:
    slots = torch.stack(picks, dim=1)
    lists = ids.gather(1, slots.clamp(min=0))
    real = valid.gather(1, slots.clamp(min=0)) & (slots >= 0)
    return torch.where(real, lists, torch.zeros_like(lists))


def mmr_rerank(
    scores: torch.Tensor, item_genres: torch.Tensor, weight: float, k: int = 10, pool: int = POOL
) -> torch.Tensor:
    """[U, k] lists chosen by maximal marginal relevance over genre Jaccard similarity."""
    ids, relevance, valid = _pool(scores, max(pool, k))
    similarity = pairwise_jaccard(item_genres[ids])  # [U, P, P]
    rows = torch.arange(len(ids))
    closest = torch.zeros_like(relevance)
    chosen = ~valid
    picks = []
    for _ in range(min(k, ids.shape[1])):
        pick = _pick(chosen, (1 - weight) * relevance - weight * closest)
        picks.append(pick)
        chosen = chosen.clone()
        chosen[rows, pick.clamp(min=0)] = True
        closest = torch.maximum(closest, similarity[rows, pick.clamp(min=0)])
    return _collect(ids, picks, valid)


def target_genres_rerank(
    scores: torch.Tensor, item_genres: torch.Tensor, target: int, k: int = 10, pool: int = POOL
) -> torch.Tensor:
    """[U, k] lists steered to cover `target` genres (DLCRec's control number)."""
    ids, relevance, valid = _pool(scores, max(pool, k))
    genres = item_genres[ids]  # [U, P, G]
    rows = torch.arange(len(ids))
    covered = torch.zeros(len(ids), item_genres.shape[1], dtype=torch.bool)
    chosen = ~valid
    picks = []
    for _ in range(min(k, ids.shape[1])):
        count = covered.sum(dim=1, keepdim=True)
        after = (genres | covered.unsqueeze(1)).sum(dim=2)  # [U, P] genres if this item joins
        fits = after <= target
        widens = (after > count) & fits & (count < target)
        overshoot = (after - target).clamp(min=0)
        # Relevance lies in [0, 1], so the tiers are strict: an item that fits (+2, +1 more if
        # it widens the list) beats one that does not, and among those that do not, each genre
        # past the target costs 2: the list overshoots as little as the pool allows.
        value = relevance + 2.0 * fits + 1.0 * widens - 2.0 * overshoot
        pick = _pick(chosen, value)
        picks.append(pick)
        chosen = chosen.clone()
        chosen[rows, pick.clamp(min=0)] = True
        covered = covered | (genres[rows, pick.clamp(min=0)] & (pick >= 0).unsqueeze(1))
    return _collect(ids, picks, valid)


def list_ranks(lists: torch.Tensor, targets: torch.Tensor, ranks: torch.Tensor) -> torch.Tensor:
    """Each target's 0-based rank after re-ranking: its slot in the re-ranked list, else its
    model rank but never inside the list (>= k), so metrics@k read the re-ranked list."""
    k = lists.shape[1]
    hit = lists == targets.unsqueeze(1)
    slot = hit.float().argmax(dim=1)
    return torch.where(hit.any(dim=1), slot, ranks.clamp(min=k))
