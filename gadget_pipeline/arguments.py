"""argparse value types shared by every verb: one wording for every bad number on the command line."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def whole_number(
    what: str = "value", minimum: int | None = None, maximum: int | None = None
) -> Callable[[str], int]:
    """A type= callable accepting whole numbers in [minimum, maximum]."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be a whole number, got {text!r}") from None
        if minimum is not None and maximum is not None and not minimum <= value <= maximum:
            raise argparse.ArgumentTypeError(f"{what} must be between {minimum} and {maximum}, got {value}")
        if minimum is not None and value < minimum:
            raise argparse.ArgumentTypeError(f"{what} must be at least {minimum}, got {value}")
        return value

    return parse


def positive_number(what: str = "value", allow_zero: bool = False) -> Callable[[str], float]:
    """A type= callable accepting finite numbers > 0 (or >= 0 with allow_zero)."""
    bound = "0 or positive" if allow_zero else "positive"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be a number, got {text!r}") from None
        if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
            raise argparse.ArgumentTypeError(f"{what} must be {bound}, got {text!r}")
        return value

    return parse
