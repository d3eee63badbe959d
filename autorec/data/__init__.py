"""Datasets and the task containers models are built from.

`load_dataset("ml-100k").task("ctr")` gives a `CTRData`; `.task("sequential")` a
`SequentialData`. Built-in datasets: ml-100k, ml-1m, synthetic, csv:SCHEMA.yaml,
parquet:SCHEMA.yaml. Built tasks are cached per process and shared: treat their tensors as
read-only.
"""

from collections.abc import Callable

from autorec.data import movielens, synthetic, tabular
from autorec.data.base import Dataset, dataset_names, load_dataset, register
from autorec.data.features import CTRData, Feature, FeatureKind, SequentialData
from autorec.errors import ConfigError


def _factory(cls: type[Dataset], make: Callable[[str | None], Dataset]) -> Callable:
    """`make`, tagged with the class it builds so listings can show tasks and descriptions."""
    make.dataset_class = cls  # type: ignore[attr-defined]
    return make


def _plain(cls: type[Dataset]) -> Callable[[str | None], Dataset]:
    def make(argument: str | None) -> Dataset:
        if argument:
            raise ConfigError(f"dataset '{cls.name}' takes no argument, got '{argument}'")
        return cls()

    return _factory(cls, make)


def _tabular(format: str) -> Callable[[str | None], Dataset]:
    return _factory(
        tabular.TabularDataset, lambda argument: tabular.TabularDataset.from_spec(format, argument)
    )


register("ml-100k", _plain(movielens.MovieLens100K))
register("ml-1m", _plain(movielens.MovieLens1M))
register("synthetic", _factory(synthetic.SyntheticDataset, synthetic.from_spec))
register("csv", _tabular("csv"))
register("parquet", _tabular("parquet"))

__all__ = [
    "CTRData",
    "Dataset",
    "Feature",
    "FeatureKind",
    "SequentialData",
    "dataset_names",
    "load_dataset",
    "register",
]
