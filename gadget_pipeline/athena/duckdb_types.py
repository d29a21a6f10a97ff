"""Column types across the three type systems the local engine touches: Glue/Hive, DuckDB and Athena.

Glue -> DuckDB to read a table the way Athena would; DuckDB -> Glue to register what a CTAS wrote with
the types Athena's CTAS would have given it; DuckDB -> Athena names to shape query results the same way.
"""

from __future__ import annotations

from typing import Any

from gadget_pipeline.athena.errors import QueryError
from gadget_pipeline.catalog.hive_types import HiveType, parse_hive_type

_HIVE_TO_DUCKDB = {
    "string": "VARCHAR", "boolean": "BOOLEAN", "tinyint": "TINYINT", "smallint": "SMALLINT", "int": "INTEGER",
    "bigint": "BIGINT", "float": "FLOAT", "double": "DOUBLE", "date": "DATE", "timestamp": "TIMESTAMP",
    "binary": "BLOB",
}
# DuckDB type id -> (Glue type, Athena result type). HUGEINT is what DuckDB's sum(integer) gives where
# Athena gives bigint: written and returned as bigint (overflow fails, as it would in Athena).
_DUCKDB_SIMPLE = {
    "varchar": ("string", "varchar"), "boolean": ("boolean", "boolean"), "tinyint": ("tinyint", "tinyint"),
    "smallint": ("smallint", "smallint"), "integer": ("int", "integer"), "bigint": ("bigint", "bigint"),
    "hugeint": ("bigint", "bigint"), "float": ("float", "real"), "double": ("double", "double"),
    "date": ("date", "date"), "timestamp": ("timestamp", "timestamp"),
    "timestamp_ms": ("timestamp", "timestamp"), "timestamp_ns": ("timestamp", "timestamp"),
    "timestamp_s": ("timestamp", "timestamp"),
    "blob": ("binary", "varbinary"), "utinyint": ("smallint", "smallint"), "usmallint": ("int", "integer"),
    "uinteger": ("bigint", "bigint"),
}
_ATHENA_ONLY = {"timestamp with time zone": "timestamp with time zone", "uuid": "uuid", "time": "time",
                "interval": "interval day to second", "ubigint": "decimal", "uhugeint": "decimal"}


def duckdb_type(hive: str | HiveType) -> str:
    """Glue column type -> DuckDB type (struct field names quoted)."""
    kind = parse_hive_type(hive) if isinstance(hive, str) else hive
    if kind.name in _HIVE_TO_DUCKDB:
        return _HIVE_TO_DUCKDB[kind.name]
    if kind.name == "decimal":
        precision, scale = (list(kind.params) + [10, 0])[:2] if kind.params else (10, 0)
        return f"DECIMAL({precision},{scale})"
    if kind.name == "array":
        return f"{duckdb_type(kind.args[0])}[]"
    if kind.name == "map":
        return f"MAP({duckdb_type(kind.args[0])}, {duckdb_type(kind.args[1])})"
    if kind.name == "struct":
        fields = ", ".join(f"{quote_identifier(name)} {duckdb_type(field)}" for name, field in kind.fields)
        return f"STRUCT({fields})"
    raise QueryError(f"the local engine cannot read Glue type {kind.render()!r}")


def glue_type(kind: Any) -> str:
    """DuckDB type (DuckDBPyType) -> the Glue type Athena's CTAS would register for it."""
    type_id = kind.id
    if type_id in _DUCKDB_SIMPLE:
        return _DUCKDB_SIMPLE[type_id][0]
    if type_id == "decimal":
        children = dict(kind.children)
        return f"decimal({children['precision']},{children['scale']})"
    if type_id == "list":
        return f"array<{glue_type(kind.children[0][1])}>"
    if type_id == "map":
        return f"map<{glue_type(kind.children[0][1])},{glue_type(kind.children[1][1])}>"
    if type_id == "struct":
        return "struct<" + ",".join(f"{name}:{glue_type(child)}" for name, child in kind.children) + ">"
    raise QueryError(f"Athena cannot store a column of type {kind} in a table (cast it, e.g. to timestamp)")


def storage_cast(kind: Any) -> str | None:
    """The DuckDB type to cast a column to before writing it, when DuckDB's own type has no Glue twin."""
    if kind.id == "hugeint":
        return "BIGINT"
    if kind.id in ("timestamp_ms", "timestamp_ns", "timestamp_s"):
        return "TIMESTAMP"
    if kind.id in ("utinyint", "usmallint", "uinteger"):
        return duckdb_type(glue_type(kind))
    return None


def athena_type_name(kind: Any) -> str:
    """DuckDB type -> the base type name Athena reports for a result column (no parameters)."""
    type_id = kind.id
    if type_id in _DUCKDB_SIMPLE:
        return _DUCKDB_SIMPLE[type_id][1]
    if type_id == "decimal":
        return "decimal"
    if type_id == "list":
        return "array"
    if type_id == "struct":
        return "row"
    if type_id == "map":
        return "map"
    return _ATHENA_ONLY.get(type_id, "varchar")


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
