"""The Athena engine: the same Athena (engine v3 / Trino) SQL on AWS and on the local moto server.

    engine = engine_for(target)                     # AwsAthenaEngine on AWS, LocalDuckDbEngine locally
    frame = engine.query("SELECT ... WHERE order_date = ?", [date(2024, 5, 1)])
    engine.execute("DROP TABLE IF EXISTS gadget_sales.scratch")
    engine.run_sql_file("daily_sales", database="gadget_sales", ..., order_date="2024-05-01")

Both return pandas DataFrames shaped by results.normalize_frame (DECIMAL -> decimal.Decimal objects) and
leave the same Glue catalog state behind (CTAS and INSERT register tables and partitions in Glue).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from importlib import resources
from typing import TYPE_CHECKING, Any

import pandas as pd

from gadget_pipeline.athena.errors import QueryError, SqlParameterError
from gadget_pipeline.athena.sql_text import (
    Parameters,
    fill_placeholders,
    placeholders_in,
    statement_keyword,
)
from gadget_pipeline.aws import AwsTarget

if TYPE_CHECKING:
    from gadget_pipeline.athena.catalog_session import CatalogSession

QUERY_KEYWORDS = frozenset({"SELECT", "WITH", "VALUES", "SHOW", "DESCRIBE", "EXPLAIN", "TABLE"})


class AthenaEngine(ABC):
    """Runs Athena SQL; `database` is the default database for unqualified table names."""

    def __init__(self, target: AwsTarget, outputs: Mapping[str, str]) -> None:
        self.target = target
        self.outputs = dict(outputs)
        self.database = outputs["GlueDatabaseName"]
        self.session: CatalogSession | None = None

    @contextmanager
    def using(self, session: CatalogSession) -> Iterator[CatalogSession]:
        """Run the statements of one job with a per-job memo of Glue/S3 answers (the local engine reads
        tables through it; Athena describes tables itself and ignores it)."""
        outer, self.session = self.session, session
        try:
            yield session
        finally:
            self.session = outer

    @abstractmethod
    def query(self, sql: str, parameters: Parameters = None) -> pd.DataFrame:
        """Run one statement and return its rows (an empty frame for statements without rows)."""

    @abstractmethod
    def execute(self, sql: str, parameters: Parameters = None) -> None:
        """Run one DDL/DML statement (CREATE TABLE AS, INSERT INTO, DROP TABLE, CREATE EXTERNAL TABLE)."""

    def run_sql_file(self, name: str, **params: Any) -> pd.DataFrame | None:
        """Run gadget_pipeline/sql/<name>.sql: `{placeholders}` take the identifier/location params (checked),
        the other params are bound to the file's `:name` parameters. Returns rows for a query, else None."""
        template = load_sql(name)
        names = placeholders_in(template)
        sql = fill_placeholders(template, {key: value for key, value in params.items() if key in names})
        values = {key: value for key, value in params.items() if key not in names}
        if statement_keyword(sql) in QUERY_KEYWORDS:
            return self.query(sql, values)
        self.execute(sql, values)
        return None

    def close(self) -> None:  # noqa: B027 (optional hook)
        """Release connections; the engine must not be used afterwards."""

    def __enter__(self) -> AthenaEngine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def load_sql(name: str) -> str:
    """The text of a packaged SQL file, by name with or without `.sql`."""
    stem = name[:-4] if name.endswith(".sql") else name
    if not stem or not stem.replace("_", "").isalnum():
        raise SqlParameterError(f"not a SQL file name: {name!r}")
    try:
        return resources.files("gadget_pipeline").joinpath("sql", f"{stem}.sql").read_text(encoding="utf-8")
    except FileNotFoundError:
        raise QueryError(f"no SQL file gadget_pipeline/sql/{stem}.sql") from None


def sql_file_names() -> list[str]:
    folder = resources.files("gadget_pipeline").joinpath("sql")
    return sorted(item.name[:-4] for item in folder.iterdir() if item.name.endswith(".sql"))


def engine_for(target: AwsTarget, outputs: Mapping[str, str] | None = None, **options: Any) -> AthenaEngine:
    """The engine for the target's world, configured from the deployed stack's outputs."""
    if outputs is None:
        from gadget_pipeline.stack import stack_outputs

        outputs = stack_outputs(target)
    if target.is_local:
        from gadget_pipeline.athena.local_engine import LocalDuckDbEngine

        return LocalDuckDbEngine(target, outputs, **options)
    from gadget_pipeline.athena.aws_engine import AwsAthenaEngine

    return AwsAthenaEngine(target, outputs, **options)
