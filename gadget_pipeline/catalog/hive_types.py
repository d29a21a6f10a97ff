"""Glue/Hive column types as values: parse `struct<city:string,n:int>`, merge two types, render back.

The crawler infers these from JSON and merges them with a table's existing schema; the local Athena engine
turns them into DuckDB types. One small parser serves both, so a type means the same thing on each side.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

INTEGER_WIDTH = {"tinyint": 1, "smallint": 2, "int": 3, "bigint": 4}
_ALIASES = {"integer": "int", "varchar": "string", "char": "string", "real": "float"}
_TOKEN = re.compile(r"\s*([^\s<>(),:]+|[<>(),:])")  # words (type or field names, numbers) and punctuation


class HiveTypeError(ValueError):
    """A type string that is not a Glue/Hive column type."""


@dataclass(frozen=True)
class HiveType:
    """One column type. `fields` for struct, `args` for array (1) and map (2), `params` for decimal(p,s)."""

    name: str
    args: tuple[HiveType, ...] = ()
    fields: tuple[tuple[str, HiveType], ...] = ()
    params: tuple[int, ...] = ()

    def render(self) -> str:
        if self.name == "struct":
            return "struct<" + ",".join(f"{name}:{kind.render()}" for name, kind in self.fields) + ">"
        if self.name in ("array", "map"):
            return f"{self.name}<" + ",".join(arg.render() for arg in self.args) + ">"
        if self.params:
            return f"{self.name}(" + ",".join(str(p) for p in self.params) + ")"
        return self.name

    def __str__(self) -> str:
        return self.render()


STRING = HiveType("string")
BOOLEAN = HiveType("boolean")
INT = HiveType("int")
BIGINT = HiveType("bigint")
DOUBLE = HiveType("double")


def array_of(element: HiveType) -> HiveType:
    return HiveType("array", args=(element,))


def struct_of(fields: list[tuple[str, HiveType]] | tuple[tuple[str, HiveType], ...]) -> HiveType:
    return HiveType("struct", fields=tuple(fields))


def parse_hive_type(text: str) -> HiveType:
    """`decimal(12,2)`, `array<struct<a:int>>`, `map<string,bigint>` ... -> HiveType (case-insensitive)."""
    tokens = _tokenize(text)
    try:
        parsed, position = _parse(tokens, 0, text)
    except IndexError:
        raise HiveTypeError(f"type {text!r} ends too early") from None
    if position != len(tokens):
        raise HiveTypeError(f"unexpected {tokens[position]!r} in type {text!r}")
    return parsed


def _tokenize(text: str) -> list[str]:
    tokens: list[str] = []
    position = 0
    stripped = text.strip()
    while position < len(stripped):
        match = _TOKEN.match(stripped, position)
        if not match:
            raise HiveTypeError(f"cannot read type {text!r} at {stripped[position:]!r}")
        tokens.append(match.group(1))
        position = match.end()
    if not tokens:
        raise HiveTypeError("empty type")
    return tokens


def _expect(tokens: list[str], position: int, token: str, text: str) -> int:
    if position >= len(tokens) or tokens[position] != token:
        raise HiveTypeError(f"expected {token!r} in type {text!r}")
    return position + 1


def _parse(tokens: list[str], position: int, text: str) -> tuple[HiveType, int]:
    name = tokens[position].lower()
    name = _ALIASES.get(name, name)
    position += 1
    if name in ("array", "map"):
        position = _expect(tokens, position, "<", text)
        args = []
        while True:
            arg, position = _parse(tokens, position, text)
            args.append(arg)
            if tokens[position] == ",":
                position += 1
                continue
            position = _expect(tokens, position, ">", text)
            break
        if len(args) != (1 if name == "array" else 2):
            raise HiveTypeError(f"wrong number of type arguments in {text!r}")
        return HiveType(name, args=tuple(args)), position
    if name == "struct":
        position = _expect(tokens, position, "<", text)
        fields = []
        while tokens[position] != ">":
            field_name = tokens[position]
            position = _expect(tokens, position + 1, ":", text)
            kind, position = _parse(tokens, position, text)
            fields.append((field_name, kind))
            if tokens[position] == ",":
                position += 1
        return HiveType("struct", fields=tuple(fields)), position + 1
    params: list[int] = []
    if position < len(tokens) and tokens[position] == "(":
        position += 1
        while tokens[position] != ")":
            if not tokens[position].isdigit():
                raise HiveTypeError(f"type parameter must be a number in {text!r}")
            params.append(int(tokens[position]))
            position += 1
            if tokens[position] == ",":
                position += 1
        position += 1
    if name == "string":
        params = []  # varchar(n)/char(n) read as string: Glue's JSON and Parquet tables don't enforce n
    if name == "decimal" and not params:
        params = [10, 0]  # Hive's default precision and scale
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        raise HiveTypeError(f"not a type name: {name!r}")
    return HiveType(name, params=tuple(params)), position


def merge_types(left: HiveType | None, right: HiveType | None) -> HiveType | None:
    """The narrowest type both values fit, as Glue's crawler widens a column seen with two types.

    None stands for "only nulls seen so far". Integers widen to bigint, numbers to double, structs merge
    field by field (first-seen order), arrays by element; anything else incompatible becomes string.
    """
    if left is None:
        return right
    if right is None or left == right:
        return left
    if left.name in INTEGER_WIDTH and right.name in INTEGER_WIDTH:
        return left if INTEGER_WIDTH[left.name] >= INTEGER_WIDTH[right.name] else right
    numeric = set(INTEGER_WIDTH) | {"double", "float"}
    if left.name in numeric and right.name in numeric:
        return DOUBLE
    if left.name == "struct" and right.name == "struct":
        merged = dict(left.fields)
        for name, kind in right.fields:
            merged[name] = merge_types(merged.get(name), kind) or STRING
        return struct_of(list(merged.items()))
    if left.name == "array" and right.name == "array":
        return array_of(merge_types(left.args[0], right.args[0]) or STRING)
    return STRING
