"""csv / parquet: a user's own event log through a YAML schema, and every error they can hit."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from autorec.data import dataset_names, load_dataset, tasks
from autorec.data.features import FeatureKind
from autorec.errors import ConfigError, DatasetError, UnknownNameError

SCHEMA = """\
path: {path}
user_id: user
item_id: movie
label: clicked
timestamp: ts
features:
  - {{name: city, type: categorical}}
  - {{name: tags, type: multi_hot, separator: "|"}}
  - {{name: price, type: numeric}}
  - {{name: recent, type: sequence, separator: " ", max_len: 3, item_vocabulary: true}}
  - {{name: title, type: text, buckets: 64}}
history: 4
"""


def _frame(rows: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    users = rng.integers(1, 6, rows)
    movies = rng.integers(1, 12, rows)
    return pd.DataFrame(
        {
            "user": [f"u{u}" for u in users],
            "movie": [f"m{m}" for m in movies],
            "clicked": rng.integers(0, 2, rows),
            "ts": rng.permutation(rows) * 10,
            "city": rng.choice(["paris", "oslo", "lima"], rows),
            "tags": [["a|b", "b", "c|a|d", ""][k % 4] for k in range(rows)],
            "price": rng.normal(50.0, 10.0, rows).round(2),
            "recent": [
                f"m99 m{m}" if k % 2 else f"m1 m2 m3 m99 m{m}" for k, m in enumerate(movies)
            ],
            "title": [
                ["The Big Sleep", "big fish", "", "Sleep, sleep!"][k % 4] for k in range(rows)
            ],
        }
    )


def _write(
    folder: Path, frame: pd.DataFrame | None = None, schema: str = SCHEMA, fmt: str = "csv"
) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    frame = _frame() if frame is None else frame
    data = folder / f"events.{fmt}"
    if fmt == "csv":
        frame.to_csv(data, index=False)
    else:
        frame.to_parquet(data, index=False)
    (folder / "schema.yaml").write_text(schema.format(path=data.name))
    return f"{fmt}:{folder / 'schema.yaml'}"


def _all(data, name):
    return torch.cat([s.columns[name] for s in (data.train, data.valid, data.test)])


def test_csv_happy_path_builds_both_tasks():
    spec = _write(Path("data"))
    dataset = load_dataset(spec)
    data = dataset.task("ctr")
    assert len(data.train) + len(data.valid) + len(data.test) == 60
    kinds = {
        f.name: (f.kind, f.vocab_size, f.max_len, f.shares_embedding_with) for f in data.features
    }
    assert kinds["user_id"] == (FeatureKind.CATEGORICAL, 6, 1, None)
    assert kinds["city"] == (FeatureKind.CATEGORICAL, 4, 1, None)
    assert kinds["tags"] == (FeatureKind.MULTI_HOT, 5, 3, None)  # a, b, c, d; at most 3 per row
    assert kinds["price"][0] == FeatureKind.NUMERIC
    assert kinds["recent"] == (FeatureKind.SEQUENCE, kinds["item_id"][1], 3, "item_id")
    assert kinds["title"] == (FeatureKind.MULTI_HOT, 65, 3, None)  # the, big, sleep
    assert kinds["hist_items"] == (FeatureKind.SEQUENCE, kinds["item_id"][1], 4, "item_id")
    assert data.train.columns["price"].dtype == torch.float32
    assert abs(data.train.columns["price"].mean().item()) < 1e-4  # standardised on train
    # m99 is no item, so it is dropped; the last three known ids remain, newest (the row's own
    # item) last, looked up in the item_id table: "m99 m7" -> [0, 0, m7], "m1 m2 m3 m99 m7" ->
    # [m2, m3, m7].
    recent, items = _all(data, "recent"), _all(data, "item_id")
    vocabulary = sorted(_frame()["movie"].unique())
    assert (recent[:, -1] == items).all()
    short = recent[:, 0] == 0
    assert (recent[short, 1] == 0).all() and short.sum() == 30
    assert recent[~short, :2].unique(dim=0).tolist() == [
        [vocabulary.index("m2") + 1, vocabulary.index("m3") + 1]
    ]
    # Titles become bags of distinct lower-cased words: "The Big Sleep" 3, "big fish" 2, "" 0,
    # "Sleep, sleep!" 1; 15 rows each.
    words = (_all(data, "title") > 0).sum(dim=1)
    assert torch.bincount(words).tolist() == [15, 15, 15, 15]
    sequential = dataset.task("sequential", max_len=5)
    assert sequential.num_items == kinds["item_id"][1] - 1
    info = dataset.info()
    assert info["rows"] == 60 and info["tasks"] == ["ctr", "sequential"] and "schema" in info


def test_csv_history_and_time_order():
    frame = pd.DataFrame(
        {
            "user": ["a", "a", "b", "a", "a"],
            "movie": ["x", "y", "x", "z", "w"],
            "clicked": [1, 0, 1, 1, 0],
            "ts": ["2024-01-03", "2024-01-01", "2024-01-02", "2024-01-01", "2024-01-05"],
        }
    )
    schema = (
        "path: {path}\nuser_id: user\nitem_id: movie\nlabel: clicked\ntimestamp: ts\nhistory: 3\n"
    )
    data = load_dataset(_write(Path("d"), frame, schema)).task("ctr")
    # ids: w=1, x=2, y=3, z=4. User a in time order: y (t1), z (t1, later in the file), x, w.
    assert len(data.train) + len(data.valid) + len(data.test) == 5
    history = dict(zip(_all(data, "item_id").tolist(), _all(data, "hist_items").tolist()))
    assert history[3] == [0, 0, 0]
    assert history[4] == [0, 0, 3]
    assert history[1] == [3, 4, 2]
    # User a: 4 rows -> floor(3.2) = 3 train, floor(3.6) - 3 = 0 valid, 1 test (w, the latest).
    # User b has one row, so it is test too; a split keeps file order.
    assert data.test.columns["item_id"].tolist() == [2, 1]


def test_parquet_matches_csv():
    csv = load_dataset(_write(Path("c"))).task("ctr")
    parquet = load_dataset(_write(Path("p"), fmt="parquet")).task("ctr")
    assert [f for f in csv.features] == [f for f in parquet.features]
    for name, column in csv.train.columns.items():
        assert torch.equal(column, parquet.train.columns[name]), name
    assert torch.equal(csv.test.label, parquet.test.label)


def test_rating_threshold_and_sequential_only_schemas():
    frame = _frame()
    frame["stars"] = np.arange(60) % 5 + 1
    rating = "path: {path}\nuser_id: user\nitem_id: movie\nrating: stars\nlabel_threshold: 4\n"
    data = load_dataset(_write(Path("r"), frame, rating)).task("ctr", split="global_time")
    labels = torch.cat([data.train.label, data.valid.label, data.test.label])
    assert labels.mean().item() == pytest.approx(0.4)
    assert data.protocol["label"] == "stars >= 4"

    plain = "path: {path}\nuser_id: user\nitem_id: movie\n"
    dataset = load_dataset(_write(Path("s"), frame, plain))
    assert dataset.tasks == ("sequential",)
    with pytest.raises(ConfigError, match="no ctr task"):
        dataset.task("ctr")
    sequential = dataset.task("sequential")
    assert len(sequential.train) == frame["user"].nunique()
    # Without timestamps the file order is time: each user's last row is the test target.
    last = frame.groupby("user")["movie"].last().sort_index()
    vocabulary = sorted(frame["movie"].unique())
    assert sequential.test_target.tolist() == [vocabulary.index(m) + 1 for m in last]


def test_tasks_are_cached_until_the_file_changes():
    spec = _write(Path("cached"))
    first = load_dataset(spec).task("ctr")
    assert load_dataset(spec).task("ctr") is first
    frame = _frame(80)
    frame.to_csv(Path("cached") / "events.csv", index=False)
    changed = load_dataset(spec).task("ctr")
    assert len(changed.train) + len(changed.valid) + len(changed.test) == 80
    tasks.clear_cache()


# ---------------------------------------------------------------------------------------------
# Errors: one line, naming the file or the column


def _error(spec: str) -> str:
    with pytest.raises(DatasetError) as error:
        load_dataset(spec).task("ctr")
    message = str(error.value)
    assert "\n" not in message
    return message


def test_missing_schema_and_missing_data_file():
    assert "schema file" in _error("csv:nowhere.yaml")
    Path("m").mkdir()
    Path("m/schema.yaml").write_text(SCHEMA.format(path="gone.csv"))
    assert "gone.csv" in _error("csv:m/schema.yaml") and "not found" in _error("csv:m/schema.yaml")


def test_empty_and_header_only_files():
    spec = _write(Path("e"))
    Path("e/events.csv").write_text("")
    assert "empty" in _error(spec)
    Path("e/events.csv").write_text("user,movie,clicked,ts\n")
    assert "no rows" in _error(spec)


def test_malformed_csv():
    spec = _write(Path("bad"))
    text = Path("bad/events.csv").read_text().splitlines()
    text[3] += ",extra,fields"
    Path("bad/events.csv").write_text("\n".join(text) + "\n")
    message = _error(spec)
    assert "malformed csv" in message and "events.csv" in message


def test_malformed_parquet():
    spec = _write(Path("bp"), fmt="parquet")
    Path("bp/events.parquet").write_bytes(b"PAR1 this is not parquet")
    assert "malformed parquet" in _error(spec)


def test_missing_column_is_named():
    spec = _write(Path("mc"), _frame().drop(columns=["city"]))
    message = _error(spec)
    assert "'city'" in message and "missing" in message


def test_wrong_column_types_are_named():
    frame = _frame()
    frame["price"] = frame["price"].astype(object)
    frame.loc[7, "price"] = "cheap"
    message = _error(_write(Path("wt"), frame))
    assert (
        "'price'" in message and "numeric" in message and "cheap" in message and "row 8" in message
    )
    frame = _frame()
    frame["ts"] = frame["ts"].astype(object)
    frame.loc[2, "ts"] = "yesterday-ish"
    assert "'ts'" in _error(_write(Path("wts"), frame))
    frame = _frame()
    frame.loc[4, "user"] = None
    assert "'user'" in _error(_write(Path("wu"), frame))


def test_labels_must_be_binary():
    frame = _frame()
    frame["clicked"] = np.arange(60) % 3
    message = _error(_write(Path("nb"), frame))
    assert "'clicked'" in message and "not binary" in message and "2" in message
    frame["clicked"] = np.where(np.arange(60) % 2, "true", "false")
    data = load_dataset(_write(Path("tf"), frame)).task("ctr")
    assert torch.cat([data.train.label, data.valid.label, data.test.label]).sum().item() == 30


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda s: s + "colour: blue\n", "colour"),
        (lambda s: s.replace("type: numeric", "type: money"), "features.2.type"),
        (
            lambda s: s.replace(
                "{name: city, type: categorical}", "{name: city, type: categorical, sep: x}"
            ),
            "sep",
        ),
        (lambda s: s.replace("label: clicked\n", "label: clicked\nrating: stars\n"), "not both"),
        (lambda s: s.replace("label: clicked\n", "rating: stars\n"), "label_threshold"),
        (lambda s: s.replace("user_id: user\n", ""), "user_id"),
        (lambda s: s.replace("name: city", "name: hist_items"), "reserved"),
        (lambda s: "path: [unclosed\n", "not valid YAML"),
        (lambda s: "- a list\n", "YAML mapping"),
    ],
)
def test_bad_schemas(change, expected):
    folder = Path("schema")
    _write(folder)
    (folder / "schema.yaml").write_text(change(SCHEMA.format(path="events.csv")))
    message = _error(f"csv:{folder / 'schema.yaml'}")
    assert expected in message and "schema" in message


def test_registry_names_and_unknown_dataset():
    assert set(dataset_names()) >= {"ml-100k", "ml-1m", "synthetic", "csv", "parquet"}
    with pytest.raises(UnknownNameError, match="unknown dataset 'ml-10b'"):
        load_dataset("ml-10b")
    with pytest.raises(ConfigError, match="schema"):
        load_dataset("csv")
    with pytest.raises(UnknownNameError, match="task"):
        load_dataset("synthetic").task("ranking")
