"""Shared data for the prompt tests: ML-100K's CTR task and a tiny CSV log with item text."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from autorec.data import load_dataset

TITLES = {
    "m1": "Alien", "m2": "Aliens", "m3": "Toy Story", "m4": "Toy Story 2", "m5": "Heat",
    "m6": "Casablanca", "m7": "Ronin", "m8": "Cars",
}  # fmt: skip
SCHEMA = """\
path: events.csv
user_id: user
item_id: movie
label: liked
timestamp: ts
features:
  - {name: title, type: text}
  - {name: plot, type: text}
history: 4
"""


def write_log(folder: Path, schema: str = SCHEMA, rows: int = 96) -> str:
    """A seeded event log of 6 users and 8 titled movies; returns its dataset spec."""
    rng = np.random.default_rng(1)
    movies = [f"m{k}" for k in rng.integers(1, 9, rows)]
    frame = pd.DataFrame({
        "user": [f"u{k}" for k in np.arange(rows) % 6],
        "movie": movies,
        "liked": rng.integers(0, 2, rows),
        "ts": np.arange(rows) * 10,
        # the first row of a movie carries its plot; later rows leave it empty
        "title": [TITLES[m] for m in movies],
        "plot": ["" if m in movies[:k] else f"plot of {TITLES[m]}" for k, m in enumerate(movies)],
    })  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_csv(folder / "events.csv", index=False)
    (folder / "schema.yaml").write_text(schema)
    return f"csv:{folder / 'schema.yaml'}"


@pytest.fixture(scope="session")
def ml100k():
    return load_dataset("ml-100k").task("ctr")


@pytest.fixture
def csv_spec(tmp_path) -> str:
    return write_log(tmp_path / "log")


@pytest.fixture
def log_writer():
    """write_log, for tests that need a schema of their own."""
    return write_log
