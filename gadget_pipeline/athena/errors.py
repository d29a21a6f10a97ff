"""Errors of the Athena engines. All are ConfigErrors, so the command line prints them as one clear line."""

from __future__ import annotations

from gadget_pipeline.config import ConfigError


class QueryError(ConfigError):
    """SQL that could not run: a syntax error, an unknown table, a failed or unsupported statement."""


class SqlParameterError(QueryError, ValueError):
    """A value or identifier for a SQL text was refused before any SQL ran (the message says which)."""
