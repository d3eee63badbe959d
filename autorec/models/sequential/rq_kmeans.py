"""Residual k-means: item embeddings -> semantic IDs, the short code tuples TIGER and GRID generate.

Level 1 clusters the embeddings into `codebook_size` groups; each next level clusters what the
levels before it left unexplained (the residual), so a tuple (c1, ..., cD) names a coarse-to-fine
region of embedding space and items with similar text share prefixes. Two items may still land on
the same D-tuple (identical or near-identical text); as TIGER does, one more code numbers the
items of each such group 0, 1, 2, ... so every item maps to a unique tuple of D + 1 codes.

Everything is seeded: k-means++ draws its starting centroids from a `torch.Generator`, and Lloyd
iterations are deterministic on CPU, so the same embeddings and seed give the same codes.
"""

from __future__ import annotations

import dataclasses

import torch

from autorec.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class ResidualCodes:
    """The quantiser's output for N vectors."""

    codes: torch.Tensor  # LongTensor [N, levels + 1]: cluster codes, then the disambiguation code
    codebooks: list[torch.Tensor]  # one [k, dim] centroid table per level (k <= codebook_size)
    errors: list[float]  # mean squared reconstruction error after levels 1..D

    @property
    def levels(self) -> int:
        return len(self.codebooks)

    def reconstruct(self, levels: int | None = None) -> torch.Tensor:
        """The sum of the first `levels` centroids of each vector's tuple, [N, dim]."""
        used = self.codebooks[: self.levels if levels is None else levels]
        out = torch.zeros(self.codes.shape[0], self.codebooks[0].shape[1])
        for level, codebook in enumerate(used):
            out += codebook[self.codes[:, level]]
        return out


def kmeans(
    points: torch.Tensor, k: int, generator: torch.Generator, iterations: int = 25
) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd's k-means with k-means++ seeding: (centroids [k', dim], assignment [N]), k' <= k.

    The returned centroids are the means of the returned assignment (each point assigned to its
    nearest centroid), so the within-cluster error never exceeds the error around the origin:
    a residual level can only lower the reconstruction error.
    """
    points = points.double()
    k = min(k, points.shape[0])
    centroids = _kmeans_plus_plus(points, k, generator)
    assignment = torch.full((points.shape[0],), -1, dtype=torch.long)
    for _ in range(iterations):
        new = torch.cdist(points, centroids).argmin(dim=1)
        if torch.equal(new, assignment):
            break
        assignment = new
        centroids = _means(points, assignment, centroids)
    assignment = torch.cdist(points, centroids).argmin(dim=1)
    used, assignment = torch.unique(assignment, return_inverse=True)  # drop empty clusters
    return _means(points, assignment, centroids[used]), assignment


def _kmeans_plus_plus(points: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """Starting centroids spread out: each next one drawn with probability ~ squared distance."""
    first = int(torch.randint(points.shape[0], (1,), generator=generator))
    chosen = [first]
    distance = ((points - points[first]) ** 2).sum(dim=1)
    for _ in range(1, k):
        total = float(distance.sum())
        if total <= 0.0:  # every point already sits on a centroid: the rest would be duplicates
            break
        index = int(torch.multinomial(distance / total, 1, generator=generator))
        chosen.append(index)
        distance = torch.minimum(distance, ((points - points[index]) ** 2).sum(dim=1))
    return points[chosen].clone()


def _means(points: torch.Tensor, assignment: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
    """Cluster means; a cluster left empty keeps its previous centroid."""
    k = previous.shape[0]
    sums = torch.zeros_like(previous).index_add_(0, assignment, points)
    counts = torch.bincount(assignment, minlength=k).unsqueeze(1).to(points.dtype)
    return torch.where(counts > 0, sums / counts.clamp(min=1), previous)


def disambiguation_codes(codes: torch.Tensor) -> torch.Tensor:
    """0, 1, 2, ... within each group of rows sharing a tuple, in row order: [N]."""
    _, group = torch.unique(codes, dim=0, return_inverse=True)
    out = torch.zeros(codes.shape[0], dtype=torch.long)
    seen: dict[int, int] = {}
    for row, g in enumerate(group.tolist()):
        out[row] = seen.get(g, 0)
        seen[g] = out[row].item() + 1
    return out


def residual_kmeans(
    vectors: torch.Tensor, codebook_size: int, levels: int, seed: int, iterations: int = 25
) -> ResidualCodes:
    """Semantic IDs of `vectors` [N, dim]: `levels` residual codebooks plus a disambiguation code.

    A group of more than `codebook_size` items on one tuple (e.g. many items with the same text)
    cannot be told apart by one more code below `codebook_size`, which is refused.
    """
    if vectors.dim() != 2 or vectors.shape[0] == 0:
        shape = tuple(vectors.shape)
        raise ConfigError(f"residual k-means needs a non-empty [N, dim] matrix, got {shape}")
    if codebook_size < 2 or levels < 1:
        raise ConfigError(
            f"residual k-means needs codebook_size >= 2 and levels >= 1, got {codebook_size} "
            f"and {levels}"
        )
    generator = torch.Generator().manual_seed(seed)
    residual = vectors.double()
    codes, codebooks, errors = [], [], []
    for _ in range(levels):
        centroids, assignment = kmeans(residual, codebook_size, generator, iterations)
        residual = residual - centroids[assignment]
        codes.append(assignment)
        codebooks.append(centroids.float())
        errors.append(float((residual**2).sum(dim=1).mean()))
    cluster_codes = torch.stack(codes, dim=1)
    extra = disambiguation_codes(cluster_codes)
    if int(extra.max()) >= codebook_size:
        raise ConfigError(
            f"semantic IDs: {int(extra.max()) + 1} items share one code tuple, more than "
            f"codebook_size={codebook_size} can number; raise codebook_size or levels (or the "
            f"items' text is identical)"
        )
    return ResidualCodes(torch.cat([cluster_codes, extra.unsqueeze(1)], dim=1), codebooks, errors)
