"""A small planted CTR dataset with every field kind, and a noise field iHAS should narrow."""

from __future__ import annotations

import pytest
import torch

from autorec.data.features import CTRData, Feature, FeatureKind, TensorSplit

USERS, ITEMS, NOISE, HIST = 40, 50, 400, 5


def planted_ctr(rows: int = 3000, seed: int = 0) -> CTRData:
    """A user likes items of their own parity group (an interaction only embeddings express),
    plus user and item main effects; `noise` (400 ids) and `price` carry nothing."""
    g = torch.Generator().manual_seed(seed)
    users = torch.randint(1, USERS + 1, (rows,), generator=g)
    items = torch.randint(1, ITEMS + 1, (rows,), generator=g)
    same = ((users % 2) == (items % 2)).float()
    bias = torch.randn(USERS + ITEMS + 2, generator=g)
    logit = bias[users] + bias[USERS + 1 + items] + 3.0 * (same - 0.5)
    label = (torch.rand(rows, generator=g) < torch.sigmoid(logit)).float()
    history = (2 * torch.randint(1, ITEMS // 2, (rows, HIST), generator=g) + users[:, None] % 2)
    lengths = torch.randint(0, HIST + 1, (rows,), generator=g)
    history = torch.where(torch.arange(HIST)[None, :] >= HIST - lengths[:, None], history, 0)
    columns = {
        "user_id": users,
        "item_id": items,
        "noise": torch.randint(1, NOISE + 1, (rows,), generator=g),
        "genres": torch.randint(0, 7, (rows, 3), generator=g),
        "price": torch.randn(rows, generator=g),
        "hist_items": history.clamp(0, ITEMS),
    }
    features = [
        Feature("user_id", FeatureKind.CATEGORICAL, USERS + 1),
        Feature("item_id", FeatureKind.CATEGORICAL, ITEMS + 1),
        Feature("noise", FeatureKind.CATEGORICAL, NOISE + 1),
        Feature("genres", FeatureKind.MULTI_HOT, 7, max_len=3),
        Feature("price", FeatureKind.NUMERIC),
        Feature("hist_items", FeatureKind.SEQUENCE, ITEMS + 1, HIST, "item_id"),
    ]
    cut1, cut2 = int(rows * 0.7), int(rows * 0.85)

    def split(lo: int, hi: int) -> TensorSplit:
        return TensorSplit({k: v[lo:hi] for k, v in columns.items()}, label[lo:hi])

    return CTRData("planted", features, split(0, cut1), split(cut1, cut2), split(cut2, rows),
                   {"name": "planted", "seed": seed}, f"planted-{seed}")  # fmt: skip


@pytest.fixture(scope="session")
def planted() -> CTRData:
    return planted_ctr()


@pytest.fixture
def ray_folder():
    """Ray's sockets and logs in one short temporary folder (socket paths have a length limit)."""
    import os
    import shutil
    import tempfile

    folder = tempfile.mkdtemp(prefix="ar-ihas-", dir="/tmp")
    os.environ["AUTOREC_RAY_TMPDIR"] = folder
    yield folder
    try:
        import ray

        ray.shutdown()
    finally:
        os.environ.pop("AUTOREC_RAY_TMPDIR", None)
        shutil.rmtree(folder, ignore_errors=True)
