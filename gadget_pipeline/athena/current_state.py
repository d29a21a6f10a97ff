"""Build gadget_sales.order_current_state -- one row per live order -- fully or incrementally.

Layout (all Parquet, all under CuratedLocation/order_current_state/):

    <build_id>/presence=live/...      rows of live orders       <- table order_current_state
    <build_id>/presence=removed/...   tombstones of removed ones   (both: table order_latest_event)

`order_latest_event` keeps every order's latest event including REMOVEs, so an incremental refresh can
merge new events on top of it without resurrecting a removed order from an older, late event.
`order_current_state` is the same build's `presence=live` folder: no second copy of the data.

A refresh never overwrites: it writes a new build folder with one CTAS (Athena cannot overwrite), then
points both Glue tables at it (the "swap", plain Glue API calls: identical on AWS and locally), and
deletes builds older than the previous one (kept for queries still reading it).

* full: every raw partition (order_current_state.sql).
* incremental: the previous build plus the raw partitions from (watermark - lookback_hours) on
  (order_current_state_incremental.sql). The watermark is the newest raw partition registered when the
  previous build started, stored as a table parameter. Re-reading partitions is harmless (the result
  is invariant under duplicates), so the lookback catches objects that Firehose wrote into an earlier
  hour's folder after that build, and partitions registered while a build ran.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from gadget_pipeline.athena.engine import AthenaEngine
from gadget_pipeline.athena.errors import QueryError
from gadget_pipeline.athena.sql_text import sql_identifier
from gadget_pipeline.catalog import glue as catalog
from gadget_pipeline.catalog.crawler import table_name_for_path
from gadget_pipeline.catalog.s3 import as_folder, clear_prefix, list_folders, split_s3_url

CURRENT_STATE_TABLE = "order_current_state"
LATEST_EVENT_TABLE = "order_latest_event"
STAGING_TABLE = "order_latest_event_next"
WATERMARK_PARAMETER = "gadget.raw_watermark"
BUILD_PARAMETER = "gadget.build_id"
RAW_PARTITION_KEYS = ("year", "month", "day", "hour")  # Firehose's hourly folders, as the crawler names them
WATERMARK_FORMAT = "%Y/%m/%d/%H"  # the newest raw partition's values, joined with "/"

Mode = Literal["auto", "full", "incremental"]


@dataclass(frozen=True)
class CurrentStateBuild:
    mode: str  # what ran: "full" | "incremental"
    build_id: str
    location: str  # the build folder; order_current_state reads its presence=live/ sub-folder
    raw_watermark: str | None  # newest raw partition registered when the build started, "2024/05/01/13"
    from_partition: str | None  # incremental: the first raw partition read, "2024/05/01/12"
    live_orders: int | None
    removed_orders: int | None
    duration_seconds: float


def raw_table_name(outputs: dict[str, str]) -> str:
    """The crawler names the raw table after the raw folder (Glue's rule): gadget_orders_cdc."""
    return table_name_for_path(outputs["RawLocation"])


def refresh_order_current_state(
    engine: AthenaEngine, *, mode: Mode = "auto", lookback_hours: int = 1, count_rows: bool = True,
) -> CurrentStateBuild:
    """(Re)build order_current_state; mode "auto" is incremental when a previous build exists."""
    started = time.monotonic()
    glue = engine.target.client("glue")
    database, raw_table = engine.database, raw_table_name(engine.outputs)
    raw = catalog.get_table(glue, database, raw_table)
    if raw is None:
        raise QueryError(f"{database}.{raw_table} is not in the catalog yet: run `gadget-pipeline crawl`")
    previous = catalog.get_table(glue, database, LATEST_EVENT_TABLE)
    previous_watermark = previous.parameters.get(WATERMARK_PARAMETER) if previous else None
    start = _lookback_start(previous_watermark, lookback_hours) if mode != "full" else None
    if mode == "incremental" and start is None:
        raise QueryError("no previous order_current_state build with a watermark: run a full build first")
    keys = [key.name for key in raw.partition_keys]
    if start is not None and keys != list(RAW_PARTITION_KEYS):
        start = None  # not Firehose's hourly layout: only a full build is safe
    # the newest registered raw partition; for a refresh only partitions from the old watermark are listed
    since = previous_watermark.split("/") if start is not None and previous_watermark else None
    watermark = max(("/".join(p.values) for p in catalog.get_partitions(
        glue, database, raw_table, expression=at_or_after(keys, since) if since else None)),
        default=previous_watermark)

    build_id = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
    location = f"{as_folder(engine.outputs['CuratedLocation'])}{CURRENT_STATE_TABLE}/{build_id}/"
    catalog.delete_table(glue, database, STAGING_TABLE)  # left over by a build that failed half-way
    names = {"database": database, "target_table": STAGING_TABLE, "target_location": location,
             "raw_table": raw_table}
    if start is None:
        engine.run_sql_file("order_current_state", **names)
    else:
        first = {f"from_{key}": value for key, value in zip(RAW_PARTITION_KEYS, start, strict=True)}
        engine.run_sql_file("order_current_state_incremental", **names, previous_table=LATEST_EVENT_TABLE,
                            **first)
    _swap_in(engine, build_id, location, watermark, previous)
    _delete_old_builds(engine, keep={location, as_folder(previous.location) if previous else ""})

    live = removed = None
    if count_rows:
        table = f"{sql_identifier(database, 'database')}.{LATEST_EVENT_TABLE}"
        counts = engine.query(f"SELECT presence, count(*) AS orders FROM {table} GROUP BY presence")  # noqa: S608
        by_presence = dict(zip(counts["presence"], counts["orders"], strict=True))
        live, removed = int(by_presence.get("live", 0)), int(by_presence.get("removed", 0))
    return CurrentStateBuild(
        mode="full" if start is None else "incremental", build_id=build_id, location=location,
        raw_watermark=watermark, from_partition="/".join(start) if start else None, live_orders=live,
        removed_orders=removed, duration_seconds=time.monotonic() - started,
    )


def at_or_after(keys: list[str], values: list[str]) -> str:
    """Glue expression: the partition tuple (keys) >= values, compared key by key like the SQL does."""
    key, value = keys[0], values[0]
    if len(keys) == 1:
        return f"{key} >= '{value}'"
    return f"{key} > '{value}' OR ({key} = '{value}' AND ({at_or_after(keys[1:], values[1:])}))"


def _lookback_start(watermark: str | None, lookback_hours: int) -> tuple[str, ...] | None:
    """The first raw partition (year, month, day, hour) an incremental refresh re-reads."""
    if not watermark:
        return None
    try:
        newest = datetime.strptime(watermark, WATERMARK_FORMAT)
    except ValueError:
        return None
    start = newest - timedelta(hours=max(lookback_hours, 0))
    return (f"{start:%Y}", f"{start:%m}", f"{start:%d}", f"{start:%H}")


def _swap_in(engine: AthenaEngine, build_id: str, location: str, watermark: str | None,
             previous: catalog.GlueTable | None) -> None:
    """Point order_latest_event and order_current_state at the new build; drop the staging entry."""
    glue = engine.target.client("glue")
    database = engine.database
    staging = catalog.get_table(glue, database, STAGING_TABLE)
    if staging is None:
        raise QueryError(f"the build did not create {database}.{STAGING_TABLE}")
    parameters = {**staging.parameters, BUILD_PARAMETER: build_id}
    if watermark:
        parameters[WATERMARK_PARAMETER] = watermark
    latest = catalog.table_input(staging.raw, Name=LATEST_EVENT_TABLE, Parameters=parameters)
    if previous is None:
        glue.create_table(DatabaseName=database, TableInput=latest)
    else:
        glue.update_table(DatabaseName=database, TableInput=latest)
    # both builds have the partitions presence=live/removed: repoint existing ones, add/drop the others
    new_partitions = catalog.partition_inputs_of(glue, database, STAGING_TABLE)
    old: set[tuple[str, ...]] = set()
    if previous is not None:
        old = {p.values for p in catalog.get_partitions(glue, database, LATEST_EVENT_TABLE)}
    fresh = {tuple(p["Values"]) for p in new_partitions}
    catalog.update_partitions(glue, database, LATEST_EVENT_TABLE,
                              [p for p in new_partitions if tuple(p["Values"]) in old])
    catalog.create_partitions(glue, database, LATEST_EVENT_TABLE,
                              [p for p in new_partitions if tuple(p["Values"]) not in old])
    catalog.delete_partitions(glue, database, LATEST_EVENT_TABLE, sorted(old - fresh))

    descriptor = {**staging.raw["StorageDescriptor"], "Location": f"{location}presence=live/"}
    current = {"Name": CURRENT_STATE_TABLE, "TableType": "EXTERNAL_TABLE", "StorageDescriptor": descriptor,
               "PartitionKeys": [], "Parameters": {**staging.parameters, BUILD_PARAMETER: build_id}}
    try:  # after the first build the table exists: update first
        glue.update_table(DatabaseName=database, TableInput=current)
    except glue.exceptions.EntityNotFoundException:
        glue.create_table(DatabaseName=database, TableInput=current)
    catalog.delete_table(glue, database, STAGING_TABLE)  # the files now belong to order_latest_event


def _delete_old_builds(engine: AthenaEngine, keep: set[str]) -> None:
    s3 = engine.target.client("s3")
    root = f"{as_folder(engine.outputs['CuratedLocation'])}{CURRENT_STATE_TABLE}/"
    bucket, prefix = split_s3_url(root)
    for folder in list_folders(s3, bucket, prefix):
        url = f"s3://{bucket}/{folder}"
        if url not in keep:
            clear_prefix(s3, url)
