"""SQL text and its parameters, the one place where anything gets into SQL text.

Values never do: they travel as query parameters (`?` for a sequence, `:name` for a mapping; both engines
receive positional `?` parameters). Identifiers and S3 locations cannot be parameters, so SQL files name
them as `{placeholder}`s, filled only after a strict check:

* identifiers (database, table, column): ``^[a-z_][a-z0-9_]*$``
* locations (a placeholder whose name ends in ``location``): ``^s3://[a-z0-9.-]+/[A-Za-z0-9_/=.-]*$``

Anything else raises SqlParameterError, naming the placeholder -- never a partly filled SQL text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from gadget_pipeline.athena.errors import SqlParameterError

IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]*")
S3_LOCATION = re.compile(r"s3://[a-z0-9.-]+/[A-Za-z0-9_/=.-]*")
PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*)\}")
# Quoted strings, quoted identifiers and comments are copied as they are; ':name' outside them is a parameter.
_SQL_LEXEME = re.compile(
    r"""'(?:[^']|'')*'|"(?:[^"]|"")*"|`[^`]*`|--[^\n]*|/\*.*?\*/|(?<![:\w]):([A-Za-z_][A-Za-z0-9_]*)|\?""",
    re.DOTALL,
)
PARAMETER_TYPES = (str, int, float, bool, Decimal, date, datetime, type(None))

Parameters = Sequence[Any] | Mapping[str, Any] | None


def sql_identifier(value: Any, what: str = "identifier") -> str:
    if not isinstance(value, str) or not IDENTIFIER.fullmatch(value):
        raise SqlParameterError(f"{what} must match ^[a-z_][a-z0-9_]*$, got {value!r}")
    return value


def s3_location(value: Any, what: str = "location") -> str:
    path = value[len("s3://"):] if isinstance(value, str) else ""
    if not isinstance(value, str) or not S3_LOCATION.fullmatch(value) or "//" in path or "/../" in path + "/":
        raise SqlParameterError(f"{what} must match ^s3://[a-z0-9.-]+/[A-Za-z0-9_/=.-]*$, got {value!r}")
    return value


def fill_placeholders(template: str, names: Mapping[str, Any]) -> str:
    """Put checked identifiers/locations into `{placeholder}`s; every placeholder must be given."""
    missing = sorted(set(PLACEHOLDER.findall(template)) - set(names))
    if missing:
        raise SqlParameterError(f"no value for SQL placeholder(s) {', '.join(missing)}")
    checked = {
        name: s3_location(value, name) if name.endswith("location") else sql_identifier(value, name)
        for name, value in names.items()
    }
    return PLACEHOLDER.sub(lambda match: checked[match.group(1)], template)


def placeholders_in(template: str) -> set[str]:
    return set(PLACEHOLDER.findall(template))


def bind_parameters(sql: str, parameters: Parameters) -> tuple[str, list[Any]]:
    """SQL with positional `?` parameters and their values, from `?` + sequence or `:name` + mapping."""
    if parameters is None:
        parameters = ()
    if isinstance(parameters, Mapping):
        values: list[Any] = []
        unused = set(parameters)

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if match.group(0) == "?":
                raise SqlParameterError("use either ? with a list or :name with a mapping, not both")
            if name is None:
                return match.group(0)
            if name not in parameters:
                raise SqlParameterError(f"no value for SQL parameter :{name}")
            unused.discard(name)
            values.append(_checked_value(parameters[name], name))
            return "?"

        bound = _SQL_LEXEME.sub(replace, sql)
        if unused:
            raise SqlParameterError(f"parameter(s) {', '.join(sorted(unused))} not used in the SQL")
        return bound, values
    if isinstance(parameters, (str, bytes)):
        raise SqlParameterError("parameters must be a list or a mapping, not a string")
    values = [_checked_value(value, f"parameter {i + 1}") for i, value in enumerate(parameters)]
    markers = sum(1 for match in _SQL_LEXEME.finditer(sql) if match.group(0) == "?")
    if markers != len(values):
        raise SqlParameterError(f"the SQL has {markers} ? parameter(s) but {len(values)} value(s) were given")
    return sql, values


def numbered_placeholders(sql: str) -> str:
    """`?` markers -> `:p1`, `:p2` ... in order, so a translator may move or repeat them safely."""
    counter = iter(range(1, sql.count("?") + 1))
    return _SQL_LEXEME.sub(lambda m: f":p{next(counter)}" if m.group(0) == "?" else m.group(0), sql)


def _checked_value(value: Any, what: str) -> Any:
    if not isinstance(value, PARAMETER_TYPES):
        raise SqlParameterError(f"{what}: unsupported parameter type {type(value).__name__}")
    if isinstance(value, float) and value != value:
        raise SqlParameterError(f"{what}: NaN is not a SQL value")
    return value


def athena_literal(value: Any) -> str:
    """A parameter value as the literal Athena's ExecutionParameters expect (one per `?`)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        return f"DECIMAL '{value}'"
    if isinstance(value, float):
        return repr(value) if "e" in repr(value) else f"{value!r}E0"  # DOUBLE, not DECIMAL
    if isinstance(value, datetime):
        return f"TIMESTAMP '{value.isoformat(sep=' ', timespec='milliseconds')}'"
    if isinstance(value, date):
        return f"DATE '{value.isoformat()}'"
    return "'" + str(value).replace("'", "''") + "'"


def statement_keyword(sql: str) -> str:
    """The first keyword of a statement (after comments and parentheses), upper-case."""
    text = re.sub(r"--[^\n]*|/\*.*?\*/", " ", sql, flags=re.DOTALL).lstrip(" \t\r\n(")
    match = re.match(r"[A-Za-z]+", text)
    return match.group(0).upper() if match else ""
