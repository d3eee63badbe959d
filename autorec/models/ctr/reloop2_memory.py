"""ReLoop2's error memory: a bounded FIFO of (key, error) pairs read by cosine k-nearest neighbours.

The paper keeps its memory in a locality-sensitive-hashing sketch so lookups stay constant-time
at production traffic. ML-100K's evaluation periods hold 10,000 rows each, so an exact memory is
both affordable (a [B, capacity] similarity matmul per batch) and free of the sketch's collision
noise, which makes a test of the idea itself rather than of the sketch.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


class ErrorMemory:
    """The last `capacity` written (key, error) pairs; older pairs are overwritten first.

    Keys are stored L2-normalised, so a matmul is cosine similarity. `estimate` averages the
    errors of a query's `neighbours` most similar keys, weighted by softmax(similarity /
    temperature): a small temperature trusts the closest pair most, a large one averages evenly.
    Not an nn.Module on purpose: the memory is evaluation state, rebuilt for every pass, and must
    stay out of the state_dict the trainer snapshots at its best epoch.
    """

    def __init__(self, capacity: int, neighbours: int, temperature: float):
        if capacity < 1 or neighbours < 1 or temperature <= 0:
            raise ValueError("capacity and neighbours must be >= 1 and temperature > 0")
        self.capacity, self.neighbours, self.temperature = capacity, neighbours, temperature
        self.clear()

    def clear(self) -> None:
        self._keys: torch.Tensor | None = None  # [capacity, D], allocated by the first write
        self._errors: torch.Tensor | None = None  # [capacity]
        self._next = 0  # slot the next write goes to (the oldest pair once full)
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def write(self, keys: torch.Tensor, errors: torch.Tensor) -> None:
        """Append rows in order: keys [B, D], errors [B]. The oldest pairs make room."""
        keys, errors = keys.detach().float(), errors.detach().float()
        if keys.shape[0] > self.capacity:  # only the newest `capacity` rows would survive anyway
            keys, errors = keys[-self.capacity :], errors[-self.capacity :]
        if self._keys is None or self._keys.shape[1] != keys.shape[1]:
            self._keys = keys.new_zeros(self.capacity, keys.shape[1])
            self._errors = errors.new_zeros(self.capacity)
            self._next = self._count = 0
        slots = (self._next + torch.arange(keys.shape[0], device=keys.device)) % self.capacity
        self._keys[slots] = F.normalize(keys, dim=1)
        self._errors[slots] = errors
        self._next = (self._next + keys.shape[0]) % self.capacity
        self._count = min(self._count + keys.shape[0], self.capacity)

    def entries(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(normalised keys, errors) held now, oldest first."""
        if self._keys is None:
            return torch.zeros(0, 0), torch.zeros(0)
        if self._count < self.capacity:
            order = torch.arange(self._count)
        else:
            order = (self._next + torch.arange(self.capacity)) % self.capacity
        order = order.to(self._keys.device)
        return self._keys[order], self._errors[order]

    def estimate(self, queries: torch.Tensor) -> torch.Tensor:
        """The neighbour-weighted error of each query [B, D] -> [B]; zeros while empty."""
        if self._count == 0:
            return queries.new_zeros(queries.shape[0])
        keys, errors = self._keys[: self._count], self._errors[: self._count]
        similarity = F.normalize(queries.float(), dim=1) @ keys.T  # [B, count]
        top, index = similarity.topk(min(self.neighbours, self._count), dim=1)
        weights = torch.softmax(top / self.temperature, dim=1)
        return (weights * errors[index]).sum(dim=1)
