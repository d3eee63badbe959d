"""The item catalog: the text a dataset knows about each item, by the CTR task's item ids.

Models that read item text (the `llm_ranker`) need what ID models never see: a movie's title,
its release year, its genres. `item_catalog(dataset)` gives one `ItemCatalog` per dataset:
- ml-100k and ml-1m: `title` (without the year), `year`, `genres` (comma-separated);
- csv / parquet: every column the schema declares with `type: text`; an item's value is the
  first non-empty one in file order (the schema's text columns are event columns, so an item
  may carry several; the first is kept, which a later edit of the file cannot reorder);
- other datasets (synthetic): no fields; asking for one is a DatasetError.

Ids follow the CTR task's `item_id` vocabulary (sorted raw ids -> 1..V-1; 0 is padding), so
`catalog.text(batch["item_id"][i], fields)` describes the row's item. Catalogs are cached per
process with the dataset's tasks.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Sequence

import pandas as pd

from autorec.data.base import Dataset, load_dataset
from autorec.data.tasks import EventLogDataset, Interactions, cached, encode_ids
from autorec.errors import DatasetError

# Item-table columns that are item text, in the order a description shows them.
MOVIELENS_FIELDS = ("title", "year", "genres")
# A catalog value is data inside a prompt: one line, bounded, no chat-template control tokens.
MAX_VALUE_CHARS = 160
_CONTROL = re.compile(r"<\|[^|>]{0,40}\|>|[\x00-\x08\x0b-\x1f\x7f]")


def clean_value(value: Any) -> str:
    """One catalog value as plain one-line text: whitespace collapsed, control tokens removed,
    cut to MAX_VALUE_CHARS."""
    if value is None or (isinstance(value, float) and value != value) or value is pd.NA:
        return ""
    text = _CONTROL.sub(" ", str(value))
    text = " ".join(text.split())
    return text[:MAX_VALUE_CHARS].rstrip()


@dataclasses.dataclass(frozen=True)
class ItemCatalog:
    """Item text by item id. `values[field][id]` is a cleaned string ('' when unknown)."""

    dataset: str
    fields: tuple[str, ...]
    values: dict[str, tuple[str, ...]]

    @property
    def num_items(self) -> int:
        """Rows per field, padding row 0 included."""
        return len(next(iter(self.values.values()))) if self.values else 0

    def require(self, fields: Sequence[str]) -> None:
        """A DatasetError naming the fields this dataset lacks."""
        missing = [field for field in fields if field not in self.fields]
        if missing:
            offered = ", ".join(self.fields) if self.fields else "none"
            raise DatasetError(
                f"dataset '{self.dataset}' has no item text field(s) {', '.join(missing)} "
                f"(item text fields: {offered}; declare `type: text` columns in a csv/parquet "
                f"schema)"
            )

    def value(self, item_id: int, field: str) -> str:
        column = self.values[field]
        return column[item_id] if 0 <= item_id < len(column) else ""

    def record(self, item_id: int, fields: Sequence[str] | None = None) -> dict[str, str]:
        return {field: self.value(item_id, field) for field in (fields or self.fields)}

    def text(self, item_id: int, fields: Sequence[str] | None = None) -> str:
        """'Toy Story; 1995; Animation, Children's, Comedy': the non-empty fields, in order."""
        return "; ".join(v for v in self.record(item_id, fields).values() if v)


def catalog_from_interactions(data: Interactions) -> ItemCatalog:
    """The catalog of an event log: item-table text (MovieLens) or `text` event columns."""
    _, vocabulary = encode_ids(data.events["item_id"])
    columns: dict[str, pd.Series] = {}
    if data.items is not None:
        items = data.items[~data.items.index.duplicated()]
        for field in MOVIELENS_FIELDS:
            if field in items.columns:
                values = items[field]
                if field == "genres":
                    values = values.astype("string").str.replace("|", ", ", regex=False)
                columns[field] = values.reindex(vocabulary)
    for column in data.columns:
        if column.kind == "text" and column.side == "event":
            table = pd.DataFrame({"item": data.events["item_id"], "v": data.events[column.name]})
            table = table[table["v"].notna() & (table["v"].astype(str).str.strip() != "")]
            first = table.drop_duplicates("item").set_index("item")["v"]
            columns[column.name] = first.reindex(vocabulary)
    values = {
        field: ("", *(clean_value(v) for v in series.tolist())) for field, series in columns.items()
    }
    return ItemCatalog(data.dataset, tuple(values), values)


def item_catalog(dataset: str | Dataset) -> ItemCatalog:
    """The catalog of a dataset (a spec such as 'ml-100k' or 'csv:schema.yaml', or a Dataset)."""
    source = load_dataset(dataset) if isinstance(dataset, str) else dataset
    if not isinstance(source, EventLogDataset):
        return ItemCatalog(source.name, (), {})
    return cached(
        (*source.source_key(), "catalog"), lambda: catalog_from_interactions(source.interactions())
    )


# CTR data names its dataset by a label ('ml-100k', 'csv:schema.yaml'); a tabular dataset's label
# holds only the schema's file name, so each tabular dataset registers itself when it loads.
_BY_LABEL: dict[str, Dataset] = {}


def remember(label: str, dataset: Dataset) -> None:
    """Let `catalog_for_label(label)` find `dataset` (called by datasets whose label is not a
    spec `load_dataset` can open)."""
    _BY_LABEL[label] = dataset


def catalog_for_label(label: str) -> ItemCatalog:
    """The catalog of the dataset a CTRData's `dataset` label names."""
    dataset = _BY_LABEL.get(label)
    return item_catalog(dataset if dataset is not None else label)
