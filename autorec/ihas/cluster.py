"""Stage 2, cluster: group instances by their gate probabilities and give each group its widths.

k-means (k-means++ start, seeded) on the training rows' keep-probabilities. A group's width for
a field is the kept dimensions of its centroid's deterministic gates (at least one block), rounded
up to the embedding_dims space's ladder, so every group's widths are a valid candidate there.
"""

from __future__ import annotations

import dataclasses

import torch

from autorec.errors import ConfigError
from autorec.ihas.gates import GateLayout
from autorec.search_spaces.embedding_dims import LADDER


@dataclasses.dataclass
class Clustering:
    centroids: torch.Tensor  # [K, G] keep-probabilities
    assignment: torch.Tensor  # [N] group of each training row
    dims: list[dict[str, int]]  # per group: field -> ladder width
    distinct_patterns: int


def distinct_patterns(probabilities: torch.Tensor, layout: GateLayout) -> int:
    """How many different deterministic gate patterns the rows have."""
    if len(probabilities) == 0:
        return 0
    return len(torch.unique(layout.deterministic(probabilities), dim=0))


def kmeans(
    points: torch.Tensor, k: int, seed: int = 0, iterations: int = 50
) -> tuple[torch.Tensor, torch.Tensor]:
    """(centroids [k, D], assignment [N]); an emptied cluster restarts at the worst-fit point."""
    points = points.double()
    generator = torch.Generator().manual_seed(seed)
    first = torch.randint(len(points), (1,), generator=generator)
    centroids = points[first]
    while len(centroids) < k:  # k-means++: far points are likelier next centres
        distance = torch.cdist(points, centroids).min(dim=1).values.pow(2)
        if distance.sum() <= 0:
            raise ConfigError(f"cannot form {k} groups: the rows have fewer distinct gate values")
        pick = torch.multinomial(distance / distance.sum(), 1, generator=generator)
        centroids = torch.cat([centroids, points[pick]])
    assignment = torch.zeros(len(points), dtype=torch.long)
    for _ in range(iterations):
        distances = torch.cdist(points, centroids)
        new_assignment = distances.argmin(dim=1)
        for group in range(k):
            members = new_assignment == group
            if members.any():
                centroids[group] = points[members].mean(dim=0)
            else:
                worst = distances.min(dim=1).values.argmax()
                centroids[group] = points[worst]
                new_assignment[worst] = group
        if torch.equal(new_assignment, assignment):
            break
        assignment = new_assignment
    return centroids.float(), assignment


def snap_to_ladder(width: float) -> int:
    """The smallest ladder width holding `width` dimensions (at least 1, at most 64)."""
    for step in LADDER:
        if step >= width:
            return step
    return LADDER[-1]


def widths_of(probabilities: torch.Tensor, layout: GateLayout) -> dict[str, int]:
    """Ladder widths of one gate-probability vector [G] (a centroid)."""
    kept = layout.kept_widths(layout.deterministic(probabilities.unsqueeze(0)))[0]
    return {name: snap_to_ladder(float(kept[i])) for i, name in enumerate(layout.fields)}


def cluster(
    probabilities: torch.Tensor, layout: GateLayout, k: int, seed: int = 0, min_rows: int = 1
) -> Clustering:
    if k < 1:
        raise ConfigError(f"groups must be at least 1, got {k}")
    patterns = distinct_patterns(probabilities, layout)
    if k > patterns:
        raise ConfigError(
            f"{k} groups asked for, but the search stage's gates make only {patterns} distinct "
            f"pattern(s) on the training rows; use --groups {max(patterns, 1)} or fewer"
        )
    if k == 1:
        centroids = probabilities.mean(dim=0, keepdim=True)
        assignment = torch.zeros(len(probabilities), dtype=torch.long)
    else:
        centroids, _ = kmeans(probabilities, k, seed)
        assignment = assign(probabilities, centroids)  # the router's rule, on every split
    sizes = torch.bincount(assignment, minlength=k)
    if int(sizes.min()) < min_rows:
        raise ConfigError(
            f"with {k} groups the smallest has {int(sizes.min())} training rows, fewer than "
            f"min_group_rows={min_rows}; ask for fewer groups"
        )
    dims = [widths_of(centroid, layout) for centroid in centroids]
    return Clustering(centroids, assignment, dims, patterns)


def assign(probabilities: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """The nearest centroid of each row [N]: how the router places rows it has not seen."""
    if len(centroids) == 1:
        return torch.zeros(len(probabilities), dtype=torch.long)
    return torch.cdist(probabilities.double(), centroids.double()).argmin(dim=1)
