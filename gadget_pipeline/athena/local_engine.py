"""Athena, locally: the same Athena-dialect SQL run by DuckDB over moto's Glue catalog and S3 objects.

Each statement is parsed with sqlglot (read="athena"). Every `db.table` it reads is exposed to DuckDB as
a view over the table's objects (local_tables); the statement is translated to DuckDB SQL and run.
Statements that change storage or the catalog are carried out the way Athena carries them out
(local_writes): CREATE TABLE AS writes Parquet to the external_location in S3 and registers the table and
its partitions in Glue, INSERT INTO appends files and partitions, DROP TABLE removes only the catalog
entry (Athena keeps the data), CREATE EXTERNAL TABLE registers a table. sqlglot drops CTAS `WITH (...)`
properties when writing DuckDB SQL, so they are read from the parsed statement first.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import pandas as pd
import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from gadget_pipeline import config
from gadget_pipeline.athena.duckdb_types import athena_type_name, quote_identifier, storage_cast
from gadget_pipeline.athena.engine import AthenaEngine
from gadget_pipeline.athena.errors import QueryError
from gadget_pipeline.athena.local_tables import LocalTableCache
from gadget_pipeline.athena.local_writes import ParquetWriter
from gadget_pipeline.athena.partition_pruning import glue_partition_filter
from gadget_pipeline.athena.results import normalize_frame
from gadget_pipeline.athena.sql_text import (
    Parameters,
    bind_parameters,
    numbered_placeholders,
    s3_location,
    sql_identifier,
)
from gadget_pipeline.aws import AwsTarget, concurrently
from gadget_pipeline.catalog import glue as catalog
from gadget_pipeline.catalog.glue import Column, GlueTable
from gadget_pipeline.catalog.hive_types import HiveTypeError, parse_hive_type
from gadget_pipeline.catalog.s3 import as_folder

T = TypeVar("T")


class CachedCopyVanished(QueryError):
    """A cached copy the statement was reading was removed meanwhile (the cache is shared by processes
    and trimmed by them): the statement is run once more, which fetches the copy again."""


class LocalDuckDbEngine(AthenaEngine):
    def __init__(
        self,
        target: AwsTarget,
        outputs: Mapping[str, str],
        *,
        database_path: str = ":memory:",
        cache_dir: Path | None = None,
        threads: int | None = None,
    ) -> None:
        super().__init__(target, outputs)
        self.work_group = outputs.get("AthenaWorkGroupName")
        self.connection = duckdb.connect(database_path)
        self.connection.execute("SET TimeZone = 'UTC'")  # Athena's session zone: timestamps mean UTC
        # cached files never change in place (a new ETag is a new file), so their Parquet footers may be
        # kept: a statement binds its views several times (view, result types, the write) -- ~3 ms each
        self.connection.execute("SET parquet_metadata_cache = true")
        if threads:
            self.connection.execute(f"SET threads = {int(threads)}")
        cache = cache_dir or config.state_dir() / "athena-local" / "s3-cache"
        self.tables = LocalTableCache(target, self.connection, cache, session_of=lambda: self.session)
        self.writer = ParquetWriter(target, self.connection, on_upload=self.tables.adopt,
                                    session_of=lambda: self.session)
        self._results_location: str | None = None

    # ------------------------------------------------------------------ the interface

    def query(self, sql: str, parameters: Parameters = None) -> pd.DataFrame:
        return _once_more_if_a_copy_vanished(self._query, sql, parameters)

    def execute(self, sql: str, parameters: Parameters = None) -> None:
        _once_more_if_a_copy_vanished(self._execute, sql, parameters)

    def _query(self, sql: str, parameters: Parameters) -> pd.DataFrame:
        statement, params = self._parse(sql, parameters)
        if not isinstance(statement, exp.Query):
            self._execute_statement(statement, params)
            return pd.DataFrame()
        relation = self._relation(self._duckdb_sql(statement, params), params)
        columns = zip(relation.columns, relation.types, strict=True)
        types = {name: athena_type_name(kind) for name, kind in columns}
        with self._query_errors():  # the relation runs here
            rows = relation.to_arrow_table()
        return normalize_frame(rows.to_pandas(), types)

    def _execute(self, sql: str, parameters: Parameters) -> None:
        statement, params = self._parse(sql, parameters)
        if isinstance(statement, exp.Query):
            relation = self._relation(self._duckdb_sql(statement, params), params)
            with self._query_errors():
                relation.fetchall()
            return
        self._execute_statement(statement, params)

    def close(self) -> None:
        self.connection.close()

    # ------------------------------------------------------------------ parse and translate

    def _parse(self, sql: str, parameters: Parameters) -> tuple[exp.Expression, dict[str, Any]]:
        bound, values = bind_parameters(sql, parameters)
        numbered = numbered_placeholders(bound)
        try:
            statements = [s for s in sqlglot.parse(numbered, read="athena") if s is not None]
        except SqlglotError as error:
            raise QueryError(f"SQL syntax error: {str(error).splitlines()[0]}") from None
        if len(statements) != 1:
            raise QueryError(f"expected exactly one SQL statement, got {len(statements)}")
        return statements[0], {f"p{i}": value for i, value in enumerate(values, start=1)}

    def _duckdb_sql(self, query: exp.Expression, params: dict[str, Any]) -> str:
        """Expose every table the query reads (pruned to the partitions its predicates allow), point the
        query at those views, and write it as DuckDB SQL. Rewrites the parsed query in place: every caller
        parsed it for this one run (copying a large statement's tree costs more than translating it)."""
        ctes = {cte.alias_or_name.lower() for cte in query.find_all(exp.CTE)}
        described: dict[tuple[str, str], GlueTable] = {}  # one statement sees one catalog state
        exposed: dict[tuple[str, str, str | None], tuple[GlueTable, str | None]] = {}
        for table in list(query.find_all(exp.Table)):
            if not table.name or (not table.args.get("db") and table.name.lower() in ctes):
                continue
            key = ((table.db or self.database).lower(), table.name.lower())
            if key not in described:
                described[key] = self.tables.describe(*key)
            glue_table = described[key]
            string_keys = {k.name for k in glue_table.partition_keys if k.type == "string"}
            partition_filter = glue_partition_filter(table, string_keys, params) if string_keys else None
            exposed.setdefault((*key, partition_filter), (glue_table, partition_filter))
            if not table.args.get("alias"):
                table.set("alias", exp.TableAlias(this=exp.to_identifier(glue_table.name)))
            table.set("catalog", None)
            table.set("db", exp.to_identifier(glue_table.database, quoted=True))
            table.set("this", exp.to_identifier(self.tables.view_name(glue_table, partition_filter),
                                                quoted=True))

        def translated() -> str:
            try:
                return query.sql(dialect="duckdb")
            except SqlglotError as error:
                raise QueryError(f"cannot translate the SQL for DuckDB: {error}") from None

        # the views' files are fetched (downloads, mostly waiting) while the statement is written out
        _, duckdb_sql = concurrently(lambda: self.tables.expose_all(list(exposed.values())), translated)
        return duckdb_sql

    @contextmanager
    def _query_errors(self) -> Iterator[None]:
        """DuckDB's errors as one QueryError line, naming S3 objects rather than their cached copies."""
        try:
            yield
        except duckdb.Error as error:
            message = f"query failed: {self.tables.in_s3_terms(_first_line(error))}"
            if isinstance(error, duckdb.IOException) and self.tables.lost_a_copy(str(error)):
                raise CachedCopyVanished(message) from None
            raise QueryError(message) from None

    def _relation(self, duckdb_sql: str, params: dict[str, Any]) -> Any:
        with self._query_errors():
            relation = self.connection.sql(duckdb_sql, params=params or None)
            columns = zip(relation.columns, relation.types, strict=True)
            casts = {name: storage_cast(kind) for name, kind in columns}
            replace = ", ".join(f"CAST({quote_identifier(n)} AS {t}) AS {quote_identifier(n)}"
                                for n, t in casts.items() if t)
            if replace:  # e.g. DuckDB's sum(integer) is HUGEINT where Athena's is bigint
                relation = self.connection.sql(f"SELECT * REPLACE ({replace}) FROM ({duckdb_sql})",  # noqa: S608
                                               params=params or None)
            return relation

    # ------------------------------------------------------------------ statements that write

    def _execute_statement(self, statement: exp.Expression, params: dict[str, Any]) -> None:
        with self._query_errors():
            if isinstance(statement, exp.Create) and statement.kind == "TABLE":
                if statement.expression is not None:
                    self._create_table_as(statement, params)
                else:
                    self._create_external_table(statement)
            elif isinstance(statement, exp.Insert):
                self._insert_into(statement, params)
            elif isinstance(statement, exp.Drop) and statement.kind == "TABLE":
                self._drop_table(statement)
            else:
                kind = statement.key.upper()
                raise QueryError(f"the local engine does not run {kind} statements (supported: SELECT, "
                                 "CREATE TABLE AS, INSERT INTO, DROP TABLE, CREATE EXTERNAL TABLE)")

    def _target_name(self, table: exp.Expression) -> tuple[str, str]:
        if isinstance(table, exp.Schema):
            table = table.this
        if not isinstance(table, exp.Table):
            raise QueryError("expected a table name")
        database = sql_identifier((table.db or self.database).lower(), "database")
        return database, sql_identifier(table.name.lower(), "table name")

    def _create_table_as(self, statement: exp.Create, params: dict[str, Any]) -> None:
        database, name = self._target_name(statement.this)
        properties = _ctas_properties(statement)
        if statement.args.get("exists") and catalog.get_table(self.target.client("glue"), database, name):
            return  # CREATE TABLE IF NOT EXISTS ... AS
        table_format = properties.pop("format", "PARQUET").upper()
        if table_format != "PARQUET":
            raise QueryError(f"the local engine writes CTAS tables as PARQUET only, not {table_format}")
        location = properties.pop("external_location", None) or self._default_table_location()
        partitioned_by = [column.lower() for column in properties.pop("partitioned_by", [])]
        compression = properties.pop("write_compression", "SNAPPY")
        unknown = set(properties) - {"bucketed_by", "bucket_count", "parquet_compression"}
        if unknown or properties.get("bucketed_by"):
            raise QueryError(f"the local engine does not support CTAS properties {sorted(properties)}")
        select_sql = self._duckdb_sql(statement.expression, params)
        created = self.writer.create_table_as(database, name, select_sql, params,
                                              location=s3_location(location), partitioned_by=partitioned_by,
                                              compression=compression)
        self.tables.forget(database, name)
        if self.session is not None:  # the job need not ask Glue for what was just registered
            self.session.table_created(database, name, created.table_input, created.partitions,
                                       rows=created.partition_rows)

    def _insert_into(self, statement: exp.Insert, params: dict[str, Any]) -> None:
        database, name = self._target_name(statement.this)
        table = catalog.get_table(self.target.client("glue"), database, name)
        if table is None:
            raise QueryError(f"TABLE_NOT_FOUND: Table 'awsdatacatalog.{database}.{name}' does not exist")
        columns = None
        if isinstance(statement.this, exp.Schema):
            columns = [column.name.lower() for column in statement.this.expressions]
        if statement.expression is None:
            raise QueryError("INSERT INTO needs a query (INSERT INTO t SELECT ... or VALUES ...)")
        self.writer.insert_into(table, self._duckdb_sql(statement.expression, params), params, columns)
        self.tables.forget(database, name)

    def _drop_table(self, statement: exp.Drop) -> None:
        tables = statement.args.get("tables") or [statement.this]
        if len(tables) != 1:
            raise QueryError("DROP TABLE takes one table")
        database, name = self._target_name(tables[0])
        # Athena drops the catalog entry of an external table and leaves its files where they are.
        dropped = catalog.delete_table(self.target.client("glue"), database, name)
        if not dropped and not statement.args.get("exists"):
            raise QueryError(f"Table '{database}.{name}' does not exist")
        self.tables.forget(database, name)

    def _create_external_table(self, statement: exp.Create) -> None:
        database, name = self._target_name(statement.this)
        properties = statement.args.get("properties")
        items = properties.expressions if properties else []
        if not any(isinstance(item, exp.ExternalProperty) for item in items):
            raise QueryError("Athena creates only EXTERNAL Hive tables: CREATE EXTERNAL TABLE ... LOCATION")
        glue = self.target.client("glue")
        if catalog.get_table(glue, database, name) is not None:
            if statement.args.get("exists"):
                return
            raise QueryError(f"Table '{database}.{name}' already exists")
        storage, location, partition_keys, parameters = "", "", [], {}
        for item in items:
            if isinstance(item, exp.FileFormatProperty):
                storage = item.name.lower()
            elif isinstance(item, exp.RowFormatSerdeProperty):
                storage = "json" if "json" in item.this.name.lower() else item.this.name
            elif isinstance(item, exp.LocationProperty):
                location = item.this.name
            elif isinstance(item, exp.PartitionedByProperty):
                partition_keys = [_column_of(column) for column in item.this.expressions]
            elif type(item) is exp.Property:  # (the specific properties above are subclasses)
                parameters[item.name] = item.args["value"].name
        storage = {"textfile": "json"}.get(storage, storage)
        if storage not in ("parquet", "json"):
            raise QueryError(f"the local engine registers Parquet or JSON tables, not {storage or 'this'}")
        columns = [_column_of(column) for column in statement.this.expressions]
        location = s3_location(as_folder(location), "LOCATION")
        descriptor = catalog.storage_descriptor(columns, location, storage)
        catalog.put_table(glue, database, {
            "Name": name, "TableType": "EXTERNAL_TABLE", "StorageDescriptor": descriptor,
            "PartitionKeys": [key.to_glue() for key in partition_keys],
            "Parameters": {"EXTERNAL": "TRUE", "classification": storage, **parameters},
        })
        self.tables.forget(database, name)

    def _default_table_location(self) -> str:
        """CTAS without external_location: Athena writes under the workgroup's results location."""
        if self._results_location is None:
            location = self.outputs.get("AthenaResultsLocation", "")
            if self.work_group:
                group = self.target.client("athena").get_work_group(WorkGroup=self.work_group)["WorkGroup"]
                location = group.get("Configuration", {}).get("ResultConfiguration", {}).get("OutputLocation",
                                                                                             location)
            self._results_location = as_folder(location)
        return f"{self._results_location}tables/{uuid.uuid4()}/"


def _ctas_properties(statement: exp.Create) -> dict[str, Any]:
    """The CTAS `WITH (...)` properties (format, external_location, partitioned_by, ...) as values."""
    result: dict[str, Any] = {}
    properties = statement.args.get("properties")
    for item in properties.expressions if properties else []:
        if isinstance(item, exp.FileFormatProperty):
            result["format"] = item.name
        elif isinstance(item, exp.PartitionedByProperty):
            result["partitioned_by"] = [e.name for e in item.this.expressions]
        elif isinstance(item, exp.LocationProperty):
            result["external_location"] = item.this.name
        elif type(item) is exp.Property:
            value = item.args["value"]
            result[item.name.lower()] = [e.name for e in value.expressions] if isinstance(value, exp.Array) \
                else value.name
        else:
            raise QueryError(f"unsupported CTAS property: {item.sql(dialect='athena')}")
    return result


def _column_of(definition: exp.ColumnDef) -> Column:
    kind = definition.args.get("kind")
    if kind is None:
        raise QueryError(f"column {definition.name} needs a type")
    text = kind.sql(dialect="hive").lower().replace(" ", "")
    try:
        return Column(sql_identifier(definition.name.lower(), "column name"), parse_hive_type(text).render())
    except HiveTypeError as error:
        raise QueryError(f"column {definition.name}: {error}") from None


def _once_more_if_a_copy_vanished(run: Callable[[str, Parameters], T], sql: str, parameters: Parameters) -> T:
    """Another engine trimmed the shared cache mid-statement: run it again (it fetches the copy again;
    nothing was uploaded or registered before the failure, so a write statement may run again too)."""
    try:
        return run(sql, parameters)
    except CachedCopyVanished:
        return run(sql, parameters)


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
