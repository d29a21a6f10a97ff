"""Partition pruning for the local engine, the way Athena prunes: predicates of a query that use only a
table's partition columns become a Glue GetPartitions `Expression`, so only matching partitions are
listed and read (and the catalog answer stays small however long the history).

Only what translates exactly is pushed down: comparisons (=, <>, <, <=, >, >=) of a string partition
column with a string literal or parameter, combined with AND/OR. Everything else is simply not pushed
(it still filters rows in DuckDB), so pruning can only skip partitions the query would not read anyway.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sqlglot import exp

_SAFE_VALUE = re.compile(r"[A-Za-z0-9_.:+-]*")
_OPERATORS = {exp.EQ: "=", exp.NEQ: "<>", exp.GT: ">", exp.GTE: ">=", exp.LT: "<", exp.LTE: "<="}
_FLIPPED = {"=": "=", "<>": "<>", ">": "<", ">=": "<=", "<": ">", "<=": ">="}


def glue_partition_filter(table: exp.Table, string_keys: set[str], params: Mapping[str, Any]) -> str | None:
    """The Glue expression for the WHERE conjuncts of the SELECT reading `table` (None: read all)."""
    select = _select_reading(table)
    where = select.args.get("where") if select is not None else None
    if where is None:
        return None
    alias = table.alias_or_name.lower()
    pushed = [rendered for conjunct in _conjuncts(where.this)
              if (rendered := _render(conjunct, alias, string_keys, params)) is not None]
    if len(pushed) == 1:
        return pushed[0][0]
    return " AND ".join(_operand(rendered) for rendered in pushed) or None


def at_or_after(keys: list[str], values: list[str]) -> str:
    """The Glue expression for "the partition tuple (keys) >= values", compared key by key -- rendered
    exactly as glue_partition_filter renders the same SQL predicate (`k1 > v1 OR (k1 = v1 AND (...))`,
    written that way in the .sql files), so a job that looks the partitions up itself and the engine's
    pruning ask the catalog session the same question, and it is asked once."""
    if not keys or len(keys) != len(values):
        raise ValueError("at_or_after needs one value per partition key")

    def condition(level: int) -> exp.Expression:
        key, value = exp.column(keys[level]), exp.Literal.string(values[level])
        if level == len(keys) - 1:
            return exp.GTE(this=key, expression=value)
        deeper = exp.Paren(this=condition(level + 1))
        rest = exp.And(this=exp.EQ(this=key, expression=value), expression=deeper)
        return exp.Or(this=exp.GT(this=key, expression=value.copy()), expression=exp.Paren(this=rest))

    rendered = _render(condition(0), "", set(keys), {})
    if rendered is None:
        raise ValueError(f"not a partition value: {values}")
    return rendered[0]


def _select_reading(table: exp.Table) -> exp.Select | None:
    """The SELECT whose FROM is exactly this table (no joins: then every column is this table's)."""
    parent = table.parent
    if isinstance(parent, exp.From) and isinstance(parent.parent, exp.Select):
        select = parent.parent
        return None if select.args.get("joins") else select
    return None


def _conjuncts(condition: exp.Expression) -> list[exp.Expression]:
    condition = condition.unnest()
    if isinstance(condition, exp.And):
        return _conjuncts(condition.left) + _conjuncts(condition.right)
    return [condition]


def _render(node: exp.Expression, alias: str, keys: set[str], params: Mapping[str, Any]
            ) -> tuple[str, bool] | None:
    """(Glue text, whether it is an AND/OR): comparisons are written bare, compound operands in
    parentheses -- the fewer parentheses, the cheaper the expression is to parse (moto's parser
    slows down with every nesting level)."""
    node = node.unnest()
    if isinstance(node, (exp.And, exp.Or)):
        left = _render(node.left, alias, keys, params)
        right = _render(node.right, alias, keys, params)
        if left is None or right is None:
            # a weaker filter is still correct for AND (drop the untranslatable side), never for OR
            return (left or right) if isinstance(node, exp.And) else None
        operator = "AND" if isinstance(node, exp.And) else "OR"
        return f"{_operand(left)} {operator} {_operand(right)}", True
    operator = _OPERATORS.get(type(node))
    if operator is None:
        return None
    column, value = _column(node.left, alias, keys), _value(node.right, params)
    if column is None or value is None:
        column, value = _column(node.right, alias, keys), _value(node.left, params)
        operator = _FLIPPED[operator]
    if column is None or value is None:
        return None
    return f"{column} {operator} '{value}'", False


def _operand(rendered: tuple[str, bool]) -> str:
    text, compound = rendered
    return f"({text})" if compound else text


def _column(node: exp.Expression, alias: str, keys: set[str]) -> str | None:
    node = node.unnest()
    if isinstance(node, exp.Column) and node.name.lower() in keys and node.table.lower() in ("", alias):
        return node.name.lower()
    return None


def _value(node: exp.Expression, params: Mapping[str, Any]) -> str | None:
    node = node.unnest()
    if isinstance(node, exp.Literal) and node.is_string:
        value: Any = node.this
    elif isinstance(node, exp.Placeholder) and node.name in params:
        value = params[node.name]
    else:
        return None
    return value if isinstance(value, str) and _SAFE_VALUE.fullmatch(value) else None
