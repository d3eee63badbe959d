"""The dataset interface and its registry."""

from __future__ import annotations

import abc
from typing import Any, Callable, ClassVar

from autorec.data.features import CTRData, SequentialData
from autorec.errors import ConfigError, UnknownNameError

TASKS = ("ctr", "sequential")
CTR_SPLITS = ("user_time", "global_time")


class Dataset(abc.ABC):
    """A source of recommender data that can build one or both tasks."""

    name: ClassVar[str]
    description: ClassVar[str]
    tasks: ClassVar[tuple[str, ...]] = TASKS

    def ctr(self, split: str = "user_time") -> CTRData:
        raise ConfigError(f"dataset '{self.name}' has no ctr task; it offers {', '.join(self.tasks)}")

    def sequential(self, max_len: int = 50) -> SequentialData:
        raise ConfigError(
            f"dataset '{self.name}' has no sequential task; it offers {', '.join(self.tasks)}"
        )

    @abc.abstractmethod
    def info(self) -> dict[str, Any]:
        """Facts a user checks before training: source, rows, users, items, features, tasks."""

    def task(self, task: str, **options: Any) -> CTRData | SequentialData:
        if task not in TASKS:
            raise UnknownNameError("task", task, TASKS)
        if task not in self.tasks:
            raise ConfigError(
                f"dataset '{self.name}' has no {task} task; it offers {', '.join(self.tasks)}"
            )
        return self.ctr(**options) if task == "ctr" else self.sequential(**options)


_FACTORIES: dict[str, Callable[[str | None], Dataset]] = {}


def register(name: str, factory: Callable[[str | None], Dataset]) -> None:
    """Register a dataset factory; it receives the text after ':' in a spec such as 'csv:FILE'."""
    _FACTORIES[name] = factory


def dataset_names() -> list[str]:
    return sorted(_FACTORIES)


def load_dataset(spec: str) -> Dataset:
    """Open a dataset by name ('ml-100k') or by name and argument ('csv:schema.yaml')."""
    name, _, argument = spec.partition(":")
    if name not in _FACTORIES:
        raise UnknownNameError("dataset", name, dataset_names())
    return _FACTORIES[name](argument or None)
