"""User groups and item genres reach both tasks, from MovieLens and from a user's CSV file."""

import pandas as pd
import torch

from autorec.data import load_dataset
from autorec.data.attributes import ctr_item_genres, ctr_user_groups
from autorec.metrics_extra import metric_names

SCHEMA = """\
path: events.csv
user_id: user
item_id: movie
label: clicked
timestamp: ts
features:
  - {name: gender, type: categorical}
  - {name: genres, type: multi_hot, separator: "|"}
"""


def test_csv_event_columns_become_groups_and_genres(tmp_path):
    # Users u1 (F), u2 (M), u3 (F); movies a (Comedy|Drama), b (Drama), c (Horror).
    rows = [("u1", "a", 1, 1), ("u1", "b", 0, 2), ("u1", "c", 1, 3), ("u2", "a", 0, 4),
            ("u2", "c", 1, 5), ("u2", "b", 1, 6), ("u3", "b", 1, 7), ("u3", "a", 0, 8),
            ("u3", "c", 1, 9)]
    gender = {"u1": "F", "u2": "M", "u3": "F"}
    genres = {"a": "Comedy|Drama", "b": "Drama", "c": "Horror"}
    frame = pd.DataFrame(rows, columns=["user", "movie", "clicked", "ts"])
    frame["gender"] = frame["user"].map(gender)
    frame["genres"] = frame["movie"].map(genres)
    frame.to_csv(tmp_path / "events.csv", index=False)
    (tmp_path / "schema.yaml").write_text(SCHEMA)
    dataset = load_dataset(f"csv:{tmp_path / 'schema.yaml'}")

    sequential = dataset.task("sequential")
    assert sequential.user_groups["gender"].tolist() == [1, 2, 1]  # F < M, sorted vocabulary
    # Items a, b, c are ids 1, 2, 3; genres Comedy, Drama, Horror are columns 0, 1, 2.
    assert sequential.item_genres.tolist() == [
        [False, False, False], [True, True, False], [False, True, False], [False, False, True]]

    ctr = dataset.task("ctr")
    assert torch.equal(ctr_item_genres(ctr), sequential.item_genres)
    assert ctr_user_groups(ctr, "gender").tolist() == [0, 1, 2, 1]
    assert "fairness.hr_gap_gender" in metric_names("sequential", sequential)
    assert "fairness.auc_gap_age" not in metric_names("ctr", ctr)  # no age column


def test_movielens_spec_offers_every_attribute():
    names = metric_names("ctr", "ml-100k")
    assert {"fairness.auc_gap_gender", "fairness.auc_gap_age", "diversity.intra_list"} <= set(names)
    sequential = load_dataset("ml-100k").task("sequential")
    assert set(sequential.user_groups) == {"gender", "age"}
    assert sequential.item_genres.shape == (1683, 19)
    assert sequential.item_genres[1:].any(dim=1).all()  # every movie has a genre
