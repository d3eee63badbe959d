import pytest
import torch

from autorec.data.features import (
    CTRData,
    Feature,
    FeatureKind,
    SequentialData,
    TensorSplit,
    pad_left,
)

# Genre bags per item (ids 1..3 = A, B, C), as a dataset's `genres` column carries them.
ITEM_GENRES = {1: [1, 0], 2: [1, 2], 3: [2, 0], 4: [3, 0], 5: [1, 0]}
GENDER = {1: 1, 2: 2, 3: 1, 4: 2}


def split(users, items, labels):
    users, items = torch.tensor(users), torch.tensor(items)
    columns = {
        "user_id": users,
        "item_id": items,
        "gender": torch.tensor([GENDER[int(u)] for u in users]),
        "genres": torch.tensor([ITEM_GENRES[int(i)] for i in items]),
    }
    return TensorSplit(columns, torch.tensor(labels, dtype=torch.float32))


def make_tiny_ctr(split_name: str = "global_time") -> CTRData:
    """Users 1..4, items 1..5. Training rows know users 1, 2 and items 1, 2, 3."""
    features = [
        Feature("user_id", FeatureKind.CATEGORICAL, 5),
        Feature("item_id", FeatureKind.CATEGORICAL, 6),
        Feature("gender", FeatureKind.CATEGORICAL, 3),
        Feature("genres", FeatureKind.MULTI_HOT, 4, 2),
    ]
    train = split([1, 1, 2, 2], [1, 2, 3, 1], [1, 0, 1, 0])
    valid = split([1, 2], [3, 2], [1, 0])
    # Test: user 3 is cold (rows 4-6), item 4 and 5 are cold (rows 2, 3, 5).
    test = split([1, 1, 2, 2, 3, 3, 3], [1, 2, 4, 5, 1, 4, 2], [1, 0, 1, 0, 1, 0, 1])
    return CTRData("tiny", features, train, valid, test, {"name": split_name}, "tiny")


@pytest.fixture
def tiny_ctr():
    """Builds the hand-made CTR table under a given split name."""
    return make_tiny_ctr


NUM_ITEMS, NUM_GENRES = 60, 6


def make_genre_sequences(num_users: int = 120, seed: int = 0) -> SequentialData:
    """Sequences over 60 items whose popularity falls with the id; items 1-10 have genre 0,
    11-20 genre 1 and so on, so the most popular items crowd a list with few genres. Users
    alternate between two groups."""
    g = torch.Generator().manual_seed(seed)
    weights = 1.0 / torch.arange(1, NUM_ITEMS + 1).double()
    sequences = [
        (torch.multinomial(weights, 12, replacement=False, generator=g) + 1).tolist()
        for _ in range(num_users)
    ]
    genres = torch.zeros(NUM_ITEMS + 1, NUM_GENRES, dtype=torch.bool)
    genres[torch.arange(1, NUM_ITEMS + 1), torch.arange(NUM_ITEMS) // 10] = True
    train, before_test = [s[:-2] for s in sequences], [s[:-1] for s in sequences]
    return SequentialData(
        dataset="genre-sequences",
        num_items=NUM_ITEMS,
        max_len=10,
        train=[torch.tensor(s) for s in train],
        valid_history=pad_left(train, 10),
        valid_target=torch.tensor([s[-2] for s in sequences]),
        valid_seen=[torch.tensor(s) for s in train],
        test_history=pad_left(before_test, 10),
        test_target=torch.tensor([s[-1] for s in sequences]),
        test_seen=[torch.tensor(s) for s in before_test],
        protocol={"name": "leave_one_out"},
        split_hash="genre-sequences",
        user_groups={"gender": torch.arange(num_users) % 2 + 1},
        item_genres=genres,
    )


def make_planted_ctr(users: int = 300, items: int = 60, per_user: int = 40) -> CTRData:
    """Labels follow gender x item kind; gender is withheld from the model (`user_groups`), so
    a model can only predict well by learning it into the user_id embedding."""
    g = torch.Generator().manual_seed(0)
    gender = torch.randint(1, 3, (users + 1,), generator=g)
    gender[0] = 0
    kind = torch.randint(0, 2, (items + 1,), generator=g) * 2 - 1
    u = torch.arange(1, users + 1).repeat_interleave(per_user)
    i = torch.randint(1, items + 1, (len(u),), generator=g)
    sign = (gender[u] * 2 - 3) * kind[i]
    label = (torch.rand(len(u), generator=g) < torch.sigmoid(2.0 * sign)).float()
    order = torch.randperm(len(u), generator=g)
    cut = [int(len(u) * 0.8), int(len(u) * 0.9)]

    def part(rows):
        return TensorSplit({"user_id": u[rows], "item_id": i[rows]}, label[rows])

    features = [
        Feature("user_id", FeatureKind.CATEGORICAL, users + 1),
        Feature("item_id", FeatureKind.CATEGORICAL, items + 1),
    ]
    splits = (order[: cut[0]], order[cut[0] : cut[1]], order[cut[1] :])
    return CTRData("planted", features, *(part(rows) for rows in splits), {"name": "random"},
                   "planted", user_groups={"gender": gender})


@pytest.fixture
def genre_sequences():
    return make_genre_sequences()


@pytest.fixture
def planted_ctr():
    return make_planted_ctr()
