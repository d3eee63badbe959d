"""`csv` and `parquet`: a user's event log described by a small YAML schema.

    path: ratings.csv          # relative to the schema file
    user_id: user
    item_id: movie
    label: clicked             # 0/1; or `rating: stars` with `label_threshold: 4`
    timestamp: ts              # optional (numbers or dates); without it file order is time
    delimiter: ","             # csv only
    features:
      - {name: city, type: categorical}
      - {name: tags, type: multi_hot, separator: "|"}
      - {name: price, type: numeric}
      - {name: recent, type: sequence, separator: " ", max_len: 20, item_vocabulary: true}
      - {name: title, type: text, buckets: 1000}   # words hashed into a multi-hot bag
    history: 20                # optional: add hist_items, the user's previous items

A `text` column is also item text: the item catalog (autorec.data.catalog) keeps each item's
first non-empty value verbatim, which text-reading models such as `llm_ranker` show.

Spec: "csv:path/to/schema.yaml" or "parquet:path/to/schema.yaml". Features are columns of the
file named by `name`. The ctr task needs `label` or `rating`; the sequential task needs only the
user, item and time (or file order). Every problem with the schema or the file is a one-line
DatasetError naming the file and, where there is one, the column.
"""

from __future__ import annotations

import csv
from collections.abc import Hashable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pydantic
import yaml

from autorec.data.tasks import HISTORY, Column, EventLogDataset, Interactions
from autorec.errors import ConfigError, DatasetError

FORMATS = ("csv", "parquet")
RESERVED = ("user_id", "item_id", "timestamp", "label", HISTORY)
DEFAULT_SEPARATORS = {"multi_hot": "|", "sequence": None}


class FeatureSchema(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")

    name: str = pydantic.Field(min_length=1)
    type: Literal["categorical", "multi_hot", "numeric", "sequence", "text"]
    separator: str | None = None
    max_len: int | None = pydantic.Field(None, ge=1, le=4096)
    item_vocabulary: bool = False
    buckets: int = pydantic.Field(1000, ge=1, le=10_000_000)

    @pydantic.model_validator(mode="after")
    def _options_fit_type(self) -> FeatureSchema:
        if self.separator is not None and self.type not in ("multi_hot", "sequence"):
            raise ValueError(f"feature '{self.name}': separator applies to multi_hot and sequence")
        if self.separator == "":
            raise ValueError(f"feature '{self.name}': separator must not be empty")
        if self.item_vocabulary and self.type != "sequence":
            raise ValueError(f"feature '{self.name}': item_vocabulary applies to sequence only")
        if self.max_len is not None and self.type in ("categorical", "numeric"):
            raise ValueError(f"feature '{self.name}': max_len does not apply to {self.type}")
        return self


class Schema(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")

    path: str = pydantic.Field(min_length=1)
    user_id: str
    item_id: str
    label: str | None = None
    rating: str | None = None
    label_threshold: float | None = None
    timestamp: str | None = None
    delimiter: str = pydantic.Field(",", min_length=1, max_length=1)
    features: list[FeatureSchema] = []
    history: int = pydantic.Field(0, ge=0, le=1000)

    @pydantic.model_validator(mode="after")
    def _consistent(self) -> Schema:
        if self.label and self.rating:
            raise ValueError("give either label or rating (with label_threshold), not both")
        if self.rating and self.label_threshold is None:
            raise ValueError("rating needs label_threshold (label = rating >= threshold)")
        if self.label_threshold is not None and not self.rating:
            raise ValueError("label_threshold applies only with rating")
        names = [feature.name for feature in self.features]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"feature '{name}' is declared twice")
            if name in RESERVED:
                raise ValueError(f"feature name '{name}' is reserved ({', '.join(RESERVED)})")
        return self


def read_schema(path: Path) -> Schema:
    if not path.is_file():
        raise DatasetError(f"schema file {path} not found")
    try:
        raw = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        mark, problem = getattr(error, "problem_mark", None), getattr(error, "problem", None)
        if mark is not None and problem:
            where = f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
        else:
            where = str(error).strip().splitlines()[0]
        raise DatasetError(f"schema {path} is not valid YAML: {where}") from error
    if not isinstance(raw, dict):
        raise DatasetError(f"schema {path} must be a YAML mapping with path, user_id, item_id, ...")
    try:
        return Schema.model_validate(raw)
    except pydantic.ValidationError as error:
        problem = error.errors()[0]
        where = ".".join(str(part) for part in problem["loc"])
        loc = problem["loc"]
        if len(loc) > 1 and loc[0] == "features" and isinstance(loc[1], int):
            features = raw.get("features")
            entry = (
                features[loc[1]] if isinstance(features, list) and loc[1] < len(features) else None
            )
            if isinstance(entry, dict) and "name" in entry:
                where += f" (feature '{entry['name']}')"
        message = problem["msg"].removeprefix("Value error, ")
        raise DatasetError(
            f"invalid schema {path}: {where + ': ' if where else ''}{message}"
        ) from None


def _first_bad_row(bad: np.ndarray) -> int:
    return int(np.flatnonzero(bad)[0]) + 1


def _as_text(values: pd.Series, separator: str | None) -> pd.Series:
    """Parquet list cells become separator-joined text, like their CSV form."""
    sample = values.dropna()
    if len(sample) and isinstance(sample.iloc[0], (list, tuple, np.ndarray)):
        joiner = separator or " "
        return values.map(
            lambda cell: (
                joiner.join(map(str, cell)) if isinstance(cell, (list, tuple, np.ndarray)) else cell
            )
        )
    return values


class TabularDataset(EventLogDataset):
    name = "csv"
    description = "a user's event log (CSV or Parquet) described by a YAML schema"

    def __init__(self, schema_path: str | Path, format: str = "csv"):
        if format not in FORMATS:
            raise ConfigError(f"unknown tabular format '{format}'; known: {', '.join(FORMATS)}")
        self.format = format
        self.name = format
        self.schema_path = Path(schema_path).expanduser().resolve()
        self.schema = read_schema(self.schema_path)
        self.data_path = (self.schema_path.parent / self.schema.path).resolve()
        if not self.data_path.is_file():
            raise DatasetError(
                f"data file {self.data_path} named by schema {self.schema_path} not found"
            )
        has_label = bool(self.schema.label or self.schema.rating)
        self.tasks = ("ctr", "sequential") if has_label else ("sequential",)

    @classmethod
    def from_spec(cls, format: str, argument: str | None) -> TabularDataset:
        if not argument:
            raise ConfigError(f"{format} needs a schema file: '{format}:path/to/schema.yaml'")
        return cls(argument, format)

    def source(self) -> str:
        return f"{self.data_path} (schema {self.schema_path})"

    def source_key(self) -> tuple[Hashable, ...]:
        stats = [path.stat() for path in (self.schema_path, self.data_path)]
        return (
            self.format,
            str(self.schema_path),
            str(self.data_path),
            *((stat.st_mtime_ns, stat.st_size) for stat in stats),
        )

    def _read(self) -> pd.DataFrame:
        path = self.data_path
        try:
            if path.stat().st_size == 0:
                raise DatasetError(f"data file {path} is empty")
            if self.format == "csv":
                frame = pd.read_csv(
                    path, sep=self.schema.delimiter, dtype=str, keep_default_na=False,
                    na_values=[""], skipinitialspace=True, quoting=csv.QUOTE_MINIMAL,
                )  # fmt: skip
            else:
                frame = pd.read_parquet(path)
        except DatasetError:
            raise
        except pd.errors.EmptyDataError as error:
            raise DatasetError(f"data file {path} is empty") from error
        except (pd.errors.ParserError, UnicodeDecodeError) as error:
            first = str(error).strip().splitlines()[0]
            raise DatasetError(f"malformed {self.format} file {path}: {first}") from error
        except Exception as error:  # pyarrow raises its own types for a corrupt parquet file
            if self.format != "parquet":
                raise
            first = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise DatasetError(f"malformed parquet file {path}: {first}") from error
        if len(frame) == 0:
            raise DatasetError(f"data file {path} has a header but no rows")
        return frame.reset_index(drop=True)

    def _require(self, frame: pd.DataFrame, column: str) -> pd.Series:
        if column not in frame.columns:
            known = ", ".join(map(str, frame.columns[:20]))
            raise DatasetError(
                f"column '{column}' named in schema {self.schema_path.name} is missing from "
                f"{self.data_path.name} (it has: {known})"
            )
        return frame[column]

    def _no_gaps(self, values: pd.Series, column: str) -> None:
        missing = values.isna().to_numpy()
        if missing.any():
            raise DatasetError(
                f"column '{column}' in {self.data_path.name} has {int(missing.sum())} empty "
                f"values (first at data row {_first_bad_row(missing)})"
            )

    def _numeric(self, values: pd.Series, column: str) -> pd.Series:
        numbers = pd.to_numeric(values, errors="coerce")
        bad = (numbers.isna() & values.notna()).to_numpy()
        if bad.any():
            row = _first_bad_row(bad)
            raise DatasetError(
                f"column '{column}' in {self.data_path.name} should be numeric but data row "
                f"{row} holds '{values.iloc[row - 1]}'"
            )
        return numbers.astype(np.float64)

    def _timestamps(self, values: pd.Series, column: str) -> np.ndarray:
        self._no_gaps(values, column)
        numbers = pd.to_numeric(values, errors="coerce")
        if numbers.notna().all():
            return numbers.to_numpy(dtype=np.float64)
        try:
            dates = pd.to_datetime(values, errors="coerce", format="mixed")
        except (TypeError, ValueError):
            dates = pd.Series(pd.NaT, index=values.index)
        bad = dates.isna().to_numpy()
        if bad.any():
            row = _first_bad_row(bad)
            raise DatasetError(
                f"column '{column}' in {self.data_path.name} should hold numbers or dates but "
                f"data row {row} holds '{values.iloc[row - 1]}'"
            )
        if getattr(dates.dt, "tz", None) is not None:
            dates = dates.dt.tz_convert("UTC").dt.tz_localize(None)
        return dates.astype("datetime64[ns]").to_numpy().astype(np.int64).astype(np.float64)

    def _label(self, frame: pd.DataFrame) -> tuple[np.ndarray, str]:
        schema = self.schema
        if schema.rating:
            ratings = self._numeric(self._require(frame, schema.rating), schema.rating)
            self._no_gaps(ratings, schema.rating)
            rule = f"{schema.rating} >= {schema.label_threshold:g}"
            return (ratings >= schema.label_threshold).to_numpy(dtype=np.float32), rule
        column = schema.label
        raw = self._require(frame, column)
        self._no_gaps(raw, column)
        text = raw.astype(str).str.strip().str.lower()
        mapping = {"0": 0.0, "1": 1.0, "0.0": 0.0, "1.0": 1.0, "false": 0.0, "true": 1.0}
        labels = text.map(mapping)
        if labels.isna().any():
            odd = sorted(set(raw[labels.isna()].astype(str)))[:5]
            raise DatasetError(
                f"label column '{column}' in {self.data_path.name} is not binary: found "
                f"{', '.join(odd)} (expected 0/1 or true/false; for ratings use rating + "
                f"label_threshold)"
            )
        return labels.to_numpy(dtype=np.float32), f"{column} (0/1)"

    def load(self) -> Interactions:
        schema, frame = self.schema, self._read()
        events = pd.DataFrame(index=frame.index)
        for key in ("user_id", "item_id"):
            column = getattr(schema, key)
            values = self._require(frame, column)
            self._no_gaps(values, column)
            events[key] = values.astype(str).to_numpy()
        if schema.timestamp:
            events["timestamp"] = self._timestamps(
                self._require(frame, schema.timestamp), schema.timestamp
            )
        else:
            events["timestamp"] = np.arange(len(frame), dtype=np.float64)
        label_rule = None
        if schema.label or schema.rating:
            events["label"], label_rule = self._label(frame)
        columns = []
        for feature in schema.features:
            values = self._require(frame, feature.name)
            separator = feature.separator or DEFAULT_SEPARATORS.get(feature.type)
            if feature.type == "numeric":
                values = self._numeric(values, feature.name)
            elif feature.type == "categorical":
                values = values.where(values.isna(), values.astype(str))
            else:
                values = _as_text(values, separator)
            events[feature.name] = values.to_numpy()
            columns.append(
                Column(
                    feature.name,
                    feature.type,
                    separator=separator,
                    max_len=feature.max_len,
                    item_vocabulary=feature.item_vocabulary,
                    buckets=feature.buckets,
                )
            )
        label = f"{self.format}:{self.schema_path.name}"
        from autorec.data import catalog  # the catalog finds this file again by the data's label

        catalog.remember(label, self)
        return Interactions(
            dataset=label,
            events=events,
            columns=tuple(columns),
            label_rule=label_rule,
            history=schema.history,
        )

    def info(self) -> dict[str, Any]:
        info = super().info()
        info["schema"] = str(self.schema_path)
        return info
