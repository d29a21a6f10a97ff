"""Schema inference the way Glue's JSON classifier does it: JSON value kinds -> Hive column types.

strings -> string, whole numbers -> int (bigint past 32 bits), other numbers -> double, true/false ->
boolean, objects -> struct<...>, arrays -> array<...>; a key seen with two kinds is widened (see
hive_types.merge_types). Our raw events carry money and quantities as decimal *text*, so those columns stay
string and SQL casts them to DECIMAL: the catalog never turns money into a binary float.
"""

from __future__ import annotations

from typing import Any

from gadget_pipeline.catalog.glue import Column
from gadget_pipeline.catalog.hive_types import (
    BIGINT,
    BOOLEAN,
    DOUBLE,
    INT,
    STRING,
    HiveType,
    array_of,
    merge_types,
    parse_hive_type,
    struct_of,
)

_INT32 = range(-(2**31), 2**31)


def infer_type(value: Any) -> HiveType | None:
    """The Hive type of one JSON value (None for null: it says nothing about the type)."""
    if value is None:
        return None
    if isinstance(value, bool):  # before int: bool is an int in Python
        return BOOLEAN
    if isinstance(value, int):
        return INT if value in _INT32 else BIGINT
    if isinstance(value, float):
        return DOUBLE
    if isinstance(value, str):
        return STRING
    if isinstance(value, dict):
        return struct_of([(key, infer_type(item) or STRING) for key, item in value.items()])
    if isinstance(value, list):
        element: HiveType | None = None
        for item in value:
            element = merge_types(element, infer_type(item))
        return array_of(element or STRING)
    return STRING


class SchemaAccumulator:
    """Top-level columns of JSON records, merged record by record, in first-seen order."""

    def __init__(self) -> None:
        self._types: dict[str, HiveType | None] = {}
        self.records = 0

    def add(self, record: dict[str, Any]) -> None:
        self.records += 1
        for key, value in record.items():
            name = key.lower()  # Hive column names are case-insensitive; Glue stores them lower-case
            self._types[name] = merge_types(self._types.get(name), infer_type(value))

    def columns(self) -> list[Column]:
        return [Column(name, (kind or STRING).render()) for name, kind in self._types.items()]


def merge_schemas(existing: list[Column], inferred: list[Column]) -> list[Column]:
    """Existing columns keep their place (types widened if new data needs it); new columns go last."""
    by_name = {column.name: column for column in inferred}
    merged = []
    for column in existing:
        new = by_name.pop(column.name, None)
        if new is None:
            merged.append(column)
        else:
            widened = merge_types(parse_hive_type(column.type), parse_hive_type(new.type))
            merged.append(Column(column.name, (widened or STRING).render()))
    merged.extend(by_name.values())
    return merged
