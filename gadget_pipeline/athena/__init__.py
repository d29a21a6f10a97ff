"""Athena SQL on AWS (pyathena) and locally (DuckDB over moto's Glue and S3), and the tables built with it."""

from gadget_pipeline.athena.engine import AthenaEngine, engine_for
from gadget_pipeline.athena.errors import QueryError, SqlParameterError

__all__ = ["AthenaEngine", "QueryError", "SqlParameterError", "engine_for"]
