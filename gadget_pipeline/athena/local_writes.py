"""What Athena's CTAS and INSERT INTO do to storage and catalog, done locally: Parquet into moto's S3
(Hive-style partition folders) and the table and its partitions registered in moto's Glue.

The rules follow Athena's: CTAS refuses an existing table or a non-empty location and wants partition
columns last; INSERT INTO appends files (never rewrites), adds missing partitions, and accepts a query
column only if Athena would coerce it to the table's type.
"""

from __future__ import annotations

import tempfile
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gadget_pipeline.athena.catalog_session import CatalogSession
from gadget_pipeline.athena.duckdb_types import (
    duckdb_type,
    glue_type,
    quote_identifier,
    quote_literal,
    storage_cast,
)
from gadget_pipeline.athena.errors import QueryError
from gadget_pipeline.aws import AwsTarget, concurrently
from gadget_pipeline.catalog import glue as catalog
from gadget_pipeline.catalog.glue import Column, GlueTable
from gadget_pipeline.catalog.hive_types import INTEGER_WIDTH, parse_hive_type
from gadget_pipeline.catalog.s3 import as_folder, has_objects, split_s3_url

COMPRESSIONS = {"SNAPPY": "snappy", "GZIP": "gzip", "ZSTD": "zstd", "NONE": "uncompressed", "LZ4": "lz4"}
NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"


@dataclass(frozen=True)
class CreatedTable:
    """What a CTAS registered in Glue: the TableInput and its PartitionInputs, and the rows it wrote (per
    partition, by values)."""

    table_input: dict[str, Any]
    partitions: list[dict[str, Any]]
    partition_rows: dict[tuple[str, ...], int]

    @property
    def rows(self) -> int:
        return sum(self.partition_rows.values())


@dataclass(frozen=True)
class WrittenPartition:
    values: tuple[str, ...]
    folder: Path  # local folder holding this partition's new files
    rows: int


class ParquetWriter:
    """Runs a DuckDB query once, writing its rows as Parquet files (partitioned Hive-style) to S3."""

    def __init__(self, target: AwsTarget, connection: Any,
                 on_upload: Callable[[str, str, str, Path], None] | None = None,
                 session_of: Callable[[], CatalogSession | None] = lambda: None) -> None:
        self.target = target
        self.connection = connection
        self.session_of = session_of  # the job's memo of Glue/S3 answers, if the engine runs one
        self.on_upload = on_upload  # (bucket, key, etag, local file): e.g. keep a copy for reading it back

    def result_columns(self, select_sql: str, params: dict[str, Any]) -> list[tuple[str, Any]]:
        relation = self.connection.sql(select_sql, params=params)
        return list(zip(relation.columns, relation.types, strict=True))

    def create_table_as(
        self, database: str, name: str, select_sql: str, params: dict[str, Any], *, location: str,
        partitioned_by: list[str], compression: str,
    ) -> CreatedTable:
        """CREATE TABLE AS: write the rows under `location`, register table and partitions."""
        glue = self.target.client("glue")
        session = self.session_of()
        existing = session.get_table(database, name) if session else catalog.get_table(glue, database, name)
        if existing is not None:
            raise QueryError(f"Table 'awsdatacatalog.{database}.{name}' already exists")
        if session.has_objects(*split_s3_url(as_folder(location))) if session else \
                has_objects(self.target.client("s3"), location):
            raise QueryError(f"HIVE_PATH_ALREADY_EXISTS: Target directory for table '{database}.{name}' "
                             f"already exists: {location}. Clear it first (Athena never overwrites data).")
        result = self.result_columns(select_sql, params)
        names = [column for column, _ in result]
        if len(set(names)) != len(names):
            raise QueryError(f"CTAS of {database}.{name}: column names must be unique, got {names}")
        if partitioned_by and names[-len(partitioned_by):] != partitioned_by:
            raise QueryError(f"partition columns {partitioned_by} must be the last columns of the SELECT "
                             f"(got {names})")
        columns = [Column(column, glue_type(kind)) for column, kind in result]
        split = len(columns) - len(partitioned_by)
        descriptor = catalog.storage_descriptor(columns[:split], location, "parquet")
        casts = {column: storage_cast(kind) for column, kind in result}
        table_input = {
            "Name": name, "TableType": "EXTERNAL_TABLE", "StorageDescriptor": descriptor,
            "PartitionKeys": [key.to_glue() for key in columns[split:]],
            "Parameters": {"EXTERNAL": "TRUE", "has_encrypted_data": "false",
                           "parquet.compression": compression.upper()},
        }
        registered = []

        def register() -> None:  # created, never replaced: another job may have created it since the check
            try:
                glue.create_table(DatabaseName=database, TableInput=table_input)
            except glue.exceptions.AlreadyExistsException:
                raise QueryError(f"Table 'awsdatacatalog.{database}.{name}' already exists") from None
            registered.append(name)

        with tempfile.TemporaryDirectory(prefix="gadget-ctas-") as scratch:
            try:
                # the table is registered while DuckDB runs the query (it releases the GIL), its partitions
                # once the files are uploaded
                _, written = concurrently(register, lambda: self._write(
                    select_sql, params, casts, partitioned_by, compression, Path(scratch)))
                partitions = self._publish(database, name, descriptor, location, partitioned_by, written,
                                           registered={})
            except Exception:
                if registered:  # as Athena's: a CTAS that failed leaves no table behind
                    catalog.delete_table(glue, database, name)
                raise
        return CreatedTable(table_input, partitions, {part.values: part.rows for part in written})

    def insert_into(self, table: GlueTable, select_sql: str, params: dict[str, Any],
                    column_order: list[str] | None) -> int:
        """INSERT INTO: append the rows as new files, add partitions that are new; row count."""
        where = f"{table.database}.{table.name}"
        if table.storage_format != "parquet":
            raise QueryError(f"the local engine inserts only into Parquet tables; {where} is "
                             f"{table.storage_format}")
        targets = list(table.all_columns)
        if column_order is not None:
            by_name = {column.name: column for column in targets}
            if sorted(column_order) != sorted(by_name):
                raise QueryError(f"INSERT INTO {where}: name all columns of the table, got {column_order}")
            targets = [by_name[name] for name in column_order]
        result = self.result_columns(select_sql, params)
        if len(result) != len(targets):
            raise QueryError(f"Insert query has mismatched column count: {where} has {len(targets)} columns, "
                             f"the query {len(result)}")
        for (_, kind), column in zip(result, targets, strict=True):
            if not coercible(glue_type(kind), column.type):
                raise QueryError(f"Insert query has mismatched column types: column {column.name} is "
                                 f"{column.type}, the query gives {glue_type(kind)}")
        # the query's columns, cast to the table's types and named and ordered like the table's
        casts = []
        for (source, _), column in zip(result, targets, strict=True):
            kind, name = duckdb_type(column.type), quote_identifier(column.name)
            casts.append(f"CAST({quote_identifier(source)} AS {kind}) AS {name}")
        projection = ", ".join(casts)
        ordered = ", ".join(quote_identifier(column.name) for column in table.all_columns)
        query = f"SELECT {ordered} FROM (SELECT {projection} FROM ({select_sql}))"  # noqa: S608 (quoted)
        keys = [key.name for key in table.partition_keys]
        glue = self.target.client("glue")
        registered = {p.values: p.location for p in catalog.get_partitions(glue, table.database, table.name)
                      } if keys else {}
        descriptor = table.raw.get("StorageDescriptor", {})
        compression = table.parameters.get("parquet.compression", "SNAPPY")
        with tempfile.TemporaryDirectory(prefix="gadget-insert-") as scratch:
            written = self._write(query, params, {}, keys, compression, Path(scratch))
            self._publish(table.database, table.name, descriptor, table.location, keys, written, registered)
        return sum(part.rows for part in written)

    # ------------------------------------------------------------------ files

    def _write(self, select_sql: str, params: dict[str, Any], casts: dict[str, str | None],
               partitioned_by: list[str], compression: str, scratch: Path
               ) -> list[WrittenPartition]:
        """COPY the query's rows to local Parquet files, one folder per partition, each with its rows."""
        codec = COMPRESSIONS.get(compression.upper())
        if codec is None:
            raise QueryError(f"write_compression must be one of {sorted(COMPRESSIONS)}, got {compression!r}")
        replace = ", ".join(f"CAST({quote_identifier(c)} AS {t}) AS {quote_identifier(c)}"
                            for c, t in casts.items() if t)
        star = f"* REPLACE ({replace})" if replace else "*"
        query = f"SELECT {star} FROM ({select_sql})"  # noqa: S608 (quoted names)
        out = scratch / "out"
        stem = uuid.uuid4().hex  # unique per statement: INSERT INTO never replaces an earlier file
        if partitioned_by:
            columns = ", ".join(quote_identifier(c) for c in partitioned_by)
            # RETURN_STATS: one row per file written (its path and rows), so nothing counts them again
            options = (f"FORMAT parquet, COMPRESSION {quote_literal(codec)}, PARTITION_BY ({columns}), "
                       f"FILENAME_PATTERN {quote_literal(stem + '_{i}')}, OVERWRITE_OR_IGNORE, RETURN_STATS")
            files = self.connection.execute(f"COPY ({query}) TO {quote_literal(str(out))} ({options})",
                                            params).fetchall()
            rows_in: dict[Path, int] = {}
            for file in files:  # (filename, count, file_size_bytes, ...)
                folder = Path(file[0]).parent
                rows_in[folder] = rows_in.get(folder, 0) + int(file[1])
            return [WrittenPartition(_values_of(folder, out, len(partitioned_by)), folder, count)
                    for folder, count in sorted(rows_in.items())]
        out.mkdir()
        target = quote_literal(str(out / f"{stem}.parquet"))
        rows = self.connection.execute(
            f"COPY ({query}) TO {target} (FORMAT parquet, COMPRESSION {quote_literal(codec)})", params
        ).fetchone()[0]
        return [WrittenPartition((), out, rows)]

    def _publish(self, database: str, name: str, descriptor: dict[str, Any], location: str, keys: list[str],
                 written: list[WrittenPartition], registered: dict[tuple[str, ...], str]
                 ) -> list[dict[str, Any]]:
        """Upload each partition's files (to its registered folder, else a Hive folder under the table
        location) and register the partitions that are new; returns their PartitionInputs."""
        s3 = self.target.client("s3")

        def upload(bucket: str, key: str, path: Path) -> None:
            with path.open("rb") as body:
                etag = s3.put_object(Bucket=bucket, Key=key, Body=body)["ETag"]
            if self.on_upload is not None:
                self.on_upload(bucket, key, etag.strip('"'), path)

        uploads = []
        for part in written:
            folder = registered.get(part.values) or _partition_location(location, keys, part.values)
            bucket, prefix = split_s3_url(as_folder(folder))
            for path in sorted(part.folder.glob("*.parquet")):
                key = prefix + path.name
                uploads.append(lambda bucket=bucket, key=key, path=path: upload(bucket, key, path))
        concurrently(*uploads)
        if not keys:
            return []
        shared = {key: value for key, value in descriptor.items() if key != "Location"}
        created = [catalog.partition_input(p.values, shared, _partition_location(location, keys, p.values))
                   for p in written if p.values not in registered]
        catalog.create_partitions(self.target.client("glue"), database, name, created)
        return created


def _values_of(folder: Path, root: Path, depth: int) -> tuple[str, ...]:
    parts = folder.relative_to(root).parts
    if len(parts) != depth:
        raise QueryError(f"unexpected partition folder {folder}")
    values = []
    for part in parts:
        value = urllib.parse.unquote(part.partition("=")[2])
        values.append(NULL_PARTITION if value == "NULL" else value)
    return tuple(values)


def _partition_location(location: str, keys: list[str], values: tuple[str, ...]) -> str:
    folders = "".join(f"{key}={urllib.parse.quote(value, safe='')}/"
                      for key, value in zip(keys, values, strict=True))
    return as_folder(location) + folders


def coercible(source: str, target: str) -> bool:
    """Would Athena insert a query column of type `source` into a table column of type `target`?

    Same kind of value only: exact numbers (integers, decimals) into exact numbers -- narrowing is
    checked per value, so an overflow fails at run time, as in Athena --, any number into double/real,
    and otherwise the same type. A string never goes into a number column, nor a double into a decimal.
    """
    left, right = parse_hive_type(source), parse_hive_type(target)
    if left == right:
        return True
    exact = set(INTEGER_WIDTH) | {"decimal"}
    if left.name in exact and right.name in exact:
        return True
    return right.name in ("double", "float") and left.name in exact | {"double", "float"}
