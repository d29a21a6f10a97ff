"""Finding new Firehose objects under the raw prefix at a cost that does not grow with history.

Firehose writes to `raw/.../year=YYYY/month=MM/day=DD/hour=HH/<stream>-<version>-YYYY-MM-DD-HH-MM-SS-<id>`.
Object names within one hour folder sort by their delivery time, so for each hour folder in a lookback
window we list only what comes after the last key we saw there (`StartAfter`). The lookback window catches
objects that land late in an earlier hour's folder; folders older than the window are never listed again.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

_TIMESTAMP_TOKEN = re.compile(r"!\{timestamp:([A-Za-z]+)\}")
_FORMATS = {"yyyy": "%Y", "MM": "%m", "dd": "%d", "HH": "%H"}


@dataclass(frozen=True)
class RawObject:
    key: str
    size: int
    partition: str  # "year=2026/month=11/day=21/hour=10"


@dataclass
class ListingStats:
    list_calls: int = 0
    keys_listed: int = 0


@dataclass
class RawCursor:
    """What a sensor remembers between ticks (serialised as JSON)."""

    last_key_by_prefix: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({"last_key_by_prefix": self.last_key_by_prefix}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None) -> RawCursor:
        if not text:
            return cls()
        return cls(last_key_by_prefix=dict(json.loads(text).get("last_key_by_prefix", {})))


def expand_timestamp_prefix(prefix_template: str, moment: datetime) -> str:
    """`raw/x/year=!{timestamp:yyyy}/...` at one moment (UTC), as Firehose expands it."""

    def replace(match: re.Match[str]) -> str:
        token = match.group(1)
        if token not in _FORMATS:
            raise ValueError(f"unsupported Firehose timestamp format {token!r} in {prefix_template!r}")
        return moment.astimezone(UTC).strftime(_FORMATS[token])

    return _TIMESTAMP_TOKEN.sub(replace, prefix_template)


def static_prefix(prefix_template: str) -> str:
    """The folder every object of a Firehose prefix lands under: up to the last '/' before any expression.

    'raw/t/year=!{timestamp:yyyy}/...' -> 'raw/t/' (not 'raw/t/year=', which would cut a partition in two).
    """
    head = prefix_template.split("!{", 1)[0]
    return head[: head.rfind("/") + 1]


def hour_prefixes(prefix_template: str, now: datetime, lookback_hours: int) -> list[str]:
    """One prefix per hour folder in the window [now - lookback, now], oldest first, deduplicated."""
    start = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    prefixes = []
    for hours_back in range(lookback_hours, -1, -1):
        prefix = expand_timestamp_prefix(prefix_template, start - timedelta(hours=hours_back))
        if prefix not in prefixes:
            prefixes.append(prefix)
    return prefixes


def partition_of(key: str, root: str) -> str:
    """Hive partition path of an object key below the raw root: 'year=…/month=…/day=…/hour=…'."""
    relative = key[len(root) :] if key.startswith(root) else key
    return "/".join(part for part in relative.split("/")[:-1] if "=" in part)


def is_data_object(key: str, size: int) -> bool:
    """Firehose data files, not folder markers, empty objects or tool droppings."""
    name = key.rsplit("/", 1)[-1]
    return (
        size > 0
        and bool(name)
        and not name.startswith(("_", "."))
        and not name.endswith((".tmp", "$folder$"))
    )


def list_new_objects(
    s3: Any,
    bucket: str,
    prefix_template: str,
    cursor: RawCursor,
    now: datetime,
    lookback_hours: int,
    stats: ListingStats | None = None,
) -> tuple[list[RawObject], RawCursor]:
    """New data objects since the cursor, and the cursor to store. Lists only the window's hour folders."""
    stats = stats if stats is not None else ListingStats()
    root = static_prefix(prefix_template)
    window = hour_prefixes(prefix_template, now, lookback_hours)
    found: list[RawObject] = []
    last_keys: dict[str, str] = {}
    for prefix in window:
        after = cursor.last_key_by_prefix.get(prefix, "")
        last = after
        for page in _pages(s3, bucket, prefix, after):
            stats.list_calls += 1
            for item in page.get("Contents", []):
                stats.keys_listed += 1
                last = max(last, item["Key"])
                if is_data_object(item["Key"], item["Size"]):
                    found.append(RawObject(item["Key"], item["Size"], partition_of(item["Key"], root)))
        if last:
            last_keys[prefix] = last
    # Prefixes that slid out of the window are forgotten: the cursor stays as small as the window.
    return found, RawCursor(last_keys)


def _pages(s3: Any, bucket: str, prefix: str, start_after: str) -> Iterable[dict[str, Any]]:
    kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
    if start_after:
        kwargs["StartAfter"] = start_after
    while True:
        page = s3.list_objects_v2(**kwargs)
        yield page
        if not page.get("IsTruncated"):
            return
        kwargs["ContinuationToken"] = page["NextContinuationToken"]
        kwargs.pop("StartAfter", None)
