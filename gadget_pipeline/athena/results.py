"""One shape for query results from either engine: the same pandas dtypes for the same Athena types.

pyathena's pandas cursor and DuckDB's Arrow output disagree on details (Int64 vs int32, NaN vs None,
datetime64 units, dates as objects or timestamps); both go through `normalize_frame`:

    decimal -> object column of decimal.Decimal (None for NULL): money stays exact
    tinyint/smallint/integer/bigint -> Int64      real/double -> float64      boolean -> boolean
    varchar/char -> str                           date -> object column of datetime.date
    timestamp -> datetime64[us]                   timestamp with time zone -> datetime64[us, UTC]
    array/map/row/json -> object (as the engine returns them)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import pandas as pd

_INTEGERS = ("tinyint", "smallint", "integer", "int", "bigint")


def base_type(type_name: str) -> str:
    """'decimal(12,2)' -> 'decimal', 'varchar(10)' -> 'varchar' (lower-case)."""
    return type_name.split("(", 1)[0].strip().lower()


def normalize_frame(frame: pd.DataFrame, athena_types: Mapping[str, str]) -> pd.DataFrame:
    result = pd.DataFrame(index=pd.RangeIndex(len(frame)))
    for column in frame.columns:
        kind = base_type(athena_types.get(column, "varchar"))
        result[column] = _normalize_column(frame[column].reset_index(drop=True), kind)
    return result


def _normalize_column(series: pd.Series, kind: str) -> pd.Series:
    if kind == "decimal":
        return pd.Series([_decimal(v) for v in series], dtype=object, name=series.name)
    if kind in _INTEGERS:
        return series.astype("Int64")
    if kind in ("real", "double", "float"):
        return series.astype("float64")
    if kind == "boolean":
        return series.astype("boolean")
    if kind in ("varchar", "char", "string"):
        return series.astype("str")
    if kind == "date":
        return pd.Series([_date(v) for v in series], dtype=object, name=series.name)
    if kind == "timestamp":
        return pd.to_datetime(series).astype("datetime64[us]")
    if kind == "timestamp with time zone":
        return pd.to_datetime(series, utc=True).astype("datetime64[us, UTC]")
    return series.astype(object)


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and value != value) or value is pd.NaT


def _decimal(value: Any) -> Decimal | None:
    if _missing(value) or value == "":
        return None
    return value if isinstance(value, Decimal) else Decimal(str(value))


def _date(value: Any) -> dt.date | None:
    if _missing(value):
        return None
    if isinstance(value, dt.datetime):  # includes pandas.Timestamp
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])
