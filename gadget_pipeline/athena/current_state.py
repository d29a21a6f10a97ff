"""Build gadget_sales.order_current_state -- one row per live order -- fully or incrementally.

Layout (all Parquet, all under CuratedLocation/order_current_state/, the tables' location):

    <build_id>/order_date=D/presence=live/...      live orders placed on D       <- order_current_state
    <build_id>/order_date=D/presence=removed/...   tombstones of removed ones       (both: order_latest_event)

`order_latest_event` (partitioned by order_date, presence) keeps every order's latest event including
REMOVEs, so an incremental refresh can merge new events on top of it without resurrecting a removed
order from an older, late event. `order_current_state` (partitioned by order_date) has one partition per
date pointing at that date's `presence=live` folder: no second copy of the data.

A refresh never overwrites: it writes a new build folder with one CTAS (Athena cannot overwrite), then
points the partitions it rewrote at it (the "swap", batched Glue API calls: identical on AWS and locally)
and deletes the files that neither the new nor the previous catalog state references (the previous one is
kept for queries still reading it) -- one listing, one batched delete.

* full: every raw partition (order_current_state.sql); every partition is replaced.
* incremental: the raw partitions of the lookback window (watermark - lookback_hours) on that changed
  since the previous build listed them, and the new ones, merged with the previous state
  (order_current_state_incremental.sql). The build holds only the order_date partitions the new events
  touch (an order's date is its order_ts, which an update does not change, and lifecycle updates come
  within days of placement), so the rows written and the catalog calls follow the new events, not the
  size of the state. Untouched dates keep their files and partitions: a partition may point into an
  older build folder. The watermark is the newest raw partition registered when the previous build
  started; with it the build stores a digest of each window partition's listing (keys and ETags), taken
  before it read them. A window partition whose listing is unchanged has been read whole already and is
  not read again; one that changed (Firehose wrote an object into an earlier hour's folder after that
  build) is re-read from its start -- harmless, the result is invariant under duplicates. When nothing
  changed, nothing is written ("unchanged").

The swap publishes partitions first and the tables' parameters (watermark, digests) last, so a refresh
that fails half-way leaves the previous watermark: the next one reads those events again instead of
believing them merged. The catalog questions of a refresh are asked at once (CatalogSession.prefetch).

Row counts come from the catalog: each partition carries its number of orders as a parameter (as the
engine counted them while writing -- the local engine does -- else by one small query over the new build
only, order_current_state_counts.sql), so counting never scans the state. An incremental build also
writes marker rows (partition presence=vacated) for the dates that changed orders left, so which dates it
touched or emptied is read off its partitions: nothing reads the previous state after the build.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from gadget_pipeline.athena.catalog_session import CatalogSession
from gadget_pipeline.athena.engine import AthenaEngine
from gadget_pipeline.athena.errors import QueryError
from gadget_pipeline.athena.partition_pruning import at_or_after
from gadget_pipeline.athena.sql_text import sql_identifier
from gadget_pipeline.aws import concurrently
from gadget_pipeline.catalog import glue as catalog
from gadget_pipeline.catalog.crawler import table_name_for_path
from gadget_pipeline.catalog.glue import Partition
from gadget_pipeline.catalog.s3 import DELETE_BATCH, as_folder, split_s3_url

CURRENT_STATE_TABLE = "order_current_state"
LATEST_EVENT_TABLE = "order_latest_event"
STAGING_TABLE = "order_latest_event_next"
WATERMARK_PARAMETER = "gadget.raw_watermark"
BUILD_PARAMETER = "gadget.build_id"
ORDERS_PARAMETER = "gadget.orders"  # a partition's number of rows (orders), written by the swap
RAW_PARTITION_KEYS = ("year", "month", "day", "hour")  # Firehose's hourly folders, as the crawler names them
STATE_PARTITION_KEYS = ("order_date", "presence")  # order_latest_event's; order_current_state: order_date
VACATED_PRESENCE = "vacated"  # an incremental build's marker partitions: dates that changed orders left
WATERMARK_FORMAT = "%Y/%m/%d/%H"  # the newest raw partition's values, joined with "/"
# the raw partitions of the last lookback window as the build listed them, {"2024/05/01/13": digest}
RAW_SEEN_PARAMETER = "gadget.raw_seen"

Mode = Literal["auto", "full", "incremental"]
Values = tuple[str, ...]


@dataclass(frozen=True)
class CurrentStateBuild:
    mode: str  # what ran: "full" | "incremental" | "unchanged" (no raw partition changed: nothing written)
    build_id: str
    location: str  # the build folder: the rewritten partitions' files live under it
    raw_watermark: str | None  # newest raw partition registered when the build started, "2024/05/01/13"
    from_partition: str | None  # incremental: the first raw partition read, "2024/05/01/12"
    live_orders: int | None
    removed_orders: int | None
    duration_seconds: float
    dates_rewritten: int = 0  # order_date partitions written by this build
    dates_total: int = 0  # order_date partitions of the state after it
    rows_written: int | None = None  # rows (live + removed orders) this build wrote
    query_seconds: float = 0.0  # of duration_seconds: the engine's statements (the build, any row count)


def raw_table_name(outputs: dict[str, str]) -> str:
    """The crawler names the raw table after the raw folder (Glue's rule): gadget_orders_cdc."""
    return table_name_for_path(outputs["RawLocation"])


def state_root(engine: AthenaEngine) -> str:
    return f"{as_folder(engine.outputs['CuratedLocation'])}{CURRENT_STATE_TABLE}/"


def refresh_order_current_state(
    engine: AthenaEngine, *, mode: Mode = "auto", lookback_hours: int = 1, count_rows: bool = True,
) -> CurrentStateBuild:
    """(Re)build order_current_state; mode "auto" is incremental when a previous build exists."""
    started = time.monotonic()
    # one memo of Glue/S3 answers for this refresh: the statements do not describe and list the tables
    # again, and it is dropped with the refresh (never stale across refreshes)
    session = CatalogSession(engine.target)
    with engine.using(session):
        return _refresh(engine, session, mode, lookback_hours, count_rows, started)


def _refresh(engine: AthenaEngine, session: CatalogSession, mode: Mode, lookback_hours: int,
             count_rows: bool, started: float) -> CurrentStateBuild:
    database, raw_table = engine.database, raw_table_name(engine.outputs)
    # first, at once, what needs nothing else: the two tables, the previous state's partitions and files
    # and whether a staging table is left over (the CTAS checks)
    session.prefetch(lambda: session.get_table(database, raw_table),
                     lambda: session.get_table(database, LATEST_EVENT_TABLE),
                     lambda: _previous_partitions(session, database),
                     lambda: session.list_objects(*split_s3_url(state_root(engine))),
                     lambda: session.get_table(database, STAGING_TABLE))
    raw = session.get_table(database, raw_table)
    if raw is None:
        raise QueryError(f"{database}.{raw_table} is not in the catalog yet: run `gadget-pipeline crawl`")
    previous = session.get_table(database, LATEST_EVENT_TABLE)
    if previous is not None and [k.name for k in previous.partition_keys] != list(STATE_PARTITION_KEYS):
        previous = _drop_old_layout(engine, session)  # a build of an earlier layout: replaced by a full build
    previous_watermark = previous.parameters.get(WATERMARK_PARAMETER) if previous else None
    start = _lookback_start(previous_watermark, lookback_hours) if mode != "full" else None
    if mode == "incremental" and start is None:
        raise QueryError("no previous order_current_state build with a watermark: run a full build first")
    keys = [key.name for key in raw.partition_keys]
    if start is not None and keys != list(RAW_PARTITION_KEYS):
        start = None  # not Firehose's hourly layout: only a full build is safe
    # then what the build will ask, at once: the raw partitions it may read (the engine's partition
    # pruning asks the same question for the SQL's raw filter: at_or_after renders it alike) and the raw
    # objects of the window
    raw_filter = at_or_after(keys, list(start)) if start is not None else None
    raw_bucket, raw_prefix = split_s3_url(as_folder(raw.location))
    # the raw objects from the window's first hour folder on: one listing whatever the window's length
    # (Hive folder names sort like their values); the partitions' folders are then read from it
    first_folder = raw_prefix + "/".join(f"{key}={value}" for key, value in zip(keys, start, strict=True)) \
        if start else None
    session.prefetch(
        lambda: session.get_partitions(database, raw_table, raw_filter),
        lambda: first_folder and session.list_objects(raw_bucket, raw_prefix, start_after=first_folder),
    )
    raw_partitions = session.get_partitions(database, raw_table, raw_filter)
    # the newest registered raw partition the build reads: the next refresh's watermark
    watermark = max(("/".join(p.values) for p in raw_partitions), default=previous_watermark)
    # the raw partitions of the next refresh's lookback window, listed before the build reads them
    tail_start = _lookback_start(watermark, lookback_hours)
    tail = [p for p in raw_partitions if start is not None or (tail_start and p.values >= tail_start)]
    seen = _listing_digests(session, tail)
    if start is not None:
        # re-read only the partitions of the window that changed since the previous build listed them
        # (an object landed late) and the new ones; the rest it has read whole already
        before = _decode_seen(previous.parameters.get(RAW_SEEN_PARAMETER) if previous else None)
        changed = sorted(values for values, digest in seen.items() if before.get("/".join(values)) != digest)
        if not changed:
            return _unchanged(engine, session, previous, previous_watermark, started)
        start = changed[0]
        session.narrow_partitions(database, raw_table, raw_filter, at_or_after(keys, list(start)),
                                  lambda values: values >= start)
    seen_parameter = _encode_seen({values: digest for values, digest in seen.items()
                                   if tail_start and values >= tail_start})

    build_id = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
    location = f"{state_root(engine)}{build_id}/"
    names = {"database": database, "target_table": STAGING_TABLE, "target_location": location,
             "raw_table": raw_table}
    querying = time.monotonic()
    if start is None:
        _create_staging(engine, session, "order_current_state", names)
    else:
        first = {f"from_{key}": value for key, value in zip(RAW_PARTITION_KEYS, start, strict=True)}
        _create_staging(engine, session, "order_current_state_incremental",
                        {**names, "previous_table": LATEST_EVENT_TABLE, **first})

    # what the build wrote: its partitions with their row counts (as the engine counted them while
    # writing, else one small query over the new build only); an incremental build's partitions also say
    # which dates it touched (see _swap_in)
    written: dict[Values, int | None] = {}
    if start is not None or count_rows:
        counted = session.rows_written(database, STAGING_TABLE)
        if counted is None:
            frame = engine.run_sql_file("order_current_state_counts", database=database,
                                        target_table=STAGING_TABLE)
            assert frame is not None
            rows = zip(frame["order_date"], frame["presence"], frame["orders"], strict=True)
            counted = {(str(day), str(presence)): int(orders) for day, presence, orders in rows}
        written = {values: orders for values, orders in counted.items() if values[1] != VACATED_PRESENCE}
    query_seconds = time.monotonic() - querying
    old = session.partition_inputs_of(database, LATEST_EVENT_TABLE) if previous else []
    parameters = {BUILD_PARAMETER: build_id, RAW_SEEN_PARAMETER: seen_parameter,
                  **({WATERMARK_PARAMETER: watermark} if watermark else {})}
    # along with the swap of the partitions: the staging entry dropped (its files become
    # order_latest_event's) and the files that neither the previous nor the new partitions hold deleted;
    # then, last, the tables' new parameters
    new = session.partition_inputs_of(database, STAGING_TABLE)
    keep = [p["StorageDescriptor"]["Location"] for p in old + new if p["Values"][-1] != VACATED_PRESENCE]
    partitions, staged, publish = _swap_in(
        engine, session, parameters, previous, old, written, full=start is None,
        alongside=[lambda: _drop_table(engine, session, STAGING_TABLE),
                   lambda: _delete_unreferenced(engine, session, keep=keep)])
    concurrently(*publish)

    live = removed = None
    if count_rows:
        live, removed = _count(engine, partitions)
    return CurrentStateBuild(
        mode="full" if start is None else "incremental", build_id=build_id, location=location,
        raw_watermark=watermark, from_partition="/".join(start) if start else None, live_orders=live,
        removed_orders=removed, duration_seconds=time.monotonic() - started,
        dates_rewritten=len({values[0] for values in staged}),
        dates_total=len({p["Values"][0] for p in partitions}),
        rows_written=sum(n for n in written.values() if n is not None) if written else None,
        query_seconds=query_seconds,
    )


def _previous_partitions(session: CatalogSession, database: str) -> None:
    """Ask for the previous state's partitions before knowing whether there is a previous state (one round
    trip less): no table, no answer."""
    glue = session.target.client("glue")
    try:
        session.partition_inputs_of(database, LATEST_EVENT_TABLE)
    except glue.exceptions.EntityNotFoundException:
        pass


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


def _listing_digests(session: CatalogSession, partitions: list[Partition]) -> dict[Values, str]:
    """Each raw partition's folder listing (keys and ETags), as a short digest: listed at once; the engine
    then reads those folders from the same listings."""
    folders = [split_s3_url(as_folder(partition.location)) for partition in partitions]
    session.prefetch(*(lambda folder=folder: session.list_objects(*folder) for folder in folders))
    digests = {}
    for partition, folder in zip(partitions, folders, strict=True):
        listing = "\n".join(f"{obj.key} {obj.etag}" for obj in session.list_objects(*folder))
        digests[partition.values] = hashlib.sha256(listing.encode()).hexdigest()[:16]
    return digests


def _encode_seen(seen: dict[Values, str]) -> str:
    return json.dumps({"/".join(values): digest for values, digest in sorted(seen.items())},
                      separators=(",", ":"))


def _decode_seen(text: str | None) -> dict[str, str]:
    """RAW_SEEN_PARAMETER of the previous build; anything unreadable means "nothing known": re-read."""
    try:
        seen = json.loads(text) if text else {}
    except ValueError:
        return {}
    if not isinstance(seen, dict):
        return {}
    return {str(key): str(value) for key, value in seen.items()}


def _unchanged(engine: AthenaEngine, session: CatalogSession, previous: catalog.GlueTable | None,
               watermark: str | None, started: float) -> CurrentStateBuild:
    """No raw partition changed since the previous build: it is current, nothing is written."""
    assert previous is not None
    partitions = session.partition_inputs_of(engine.database, LATEST_EVENT_TABLE)
    live, removed = _count(engine, partitions)
    return CurrentStateBuild(
        mode="unchanged", build_id=previous.parameters.get(BUILD_PARAMETER, ""),
        location=previous.location, raw_watermark=watermark, from_partition=None, live_orders=live,
        removed_orders=removed, duration_seconds=time.monotonic() - started, dates_rewritten=0,
        dates_total=len({p["Values"][0] for p in partitions}), rows_written=0,
    )


def _create_staging(engine: AthenaEngine, session: CatalogSession, sql_file: str, params: dict[str, Any]
                    ) -> None:
    """The build's CTAS into the staging table. A staging entry left by a build that failed half-way is
    dropped first (catalog only: its files are unreferenced and go with the next clean-up)."""
    if session.get_table(engine.database, STAGING_TABLE) is not None:
        _drop_table(engine, session, STAGING_TABLE)
    engine.run_sql_file(sql_file, **params)
    if session.get_table(engine.database, STAGING_TABLE) is None:
        # Athena registered the table itself: the session's answer from before the build is stale (the
        # local engine tells the session what it registered, so it has nothing to forget)
        session.forget_table(engine.database, STAGING_TABLE)


def _drop_table(engine: AthenaEngine, session: CatalogSession, name: str) -> None:
    """Delete a table's catalog entry only (its files go with the clean-up); the session knows it gone."""
    catalog.delete_table(engine.target.client("glue"), engine.database, name)
    session.table_dropped(engine.database, name)


def _drop_old_layout(engine: AthenaEngine, session: CatalogSession) -> None:
    """Drop the catalog entries of a build of an earlier layout."""
    for name in (LATEST_EVENT_TABLE, CURRENT_STATE_TABLE):
        _drop_table(engine, session, name)


def _swap_in(engine: AthenaEngine, session: CatalogSession, build_parameters: dict[str, str],
             previous: catalog.GlueTable | None, old: list[dict[str, Any]], written: dict[Values, int | None],
             *, full: bool, alongside: Iterable[Callable[[], object]] = ()
             ) -> tuple[list[dict[str, Any]], set[Values], list[Callable[[], object]]]:
    """Point the rewritten partitions of order_latest_event and order_current_state at the new build (all
    of them for a full build, the touched dates for an incremental one). Returns order_latest_event's
    partitions after the swap, the values of those the build wrote, and the table updates that publish
    the build's parameters (watermark, raw listings seen): the caller runs them last. `alongside`: calls
    that run at once with the partitions' (they must not depend on the swap's order).

    Partitions first, the tables' parameters last: a swap that fails half-way then leaves the previous
    watermark, so the next refresh reads those events again (harmless) rather than believing them merged.

    An incremental build touched the dates it wrote partitions for, including its presence=vacated marker
    partitions (dates a changed order left): a touched date's old partitions that the build did not write
    again go -- all of them for a date it emptied. The marker partitions themselves are not swapped in
    (their files are unreferenced and go with the clean-up)."""
    glue = engine.target.client("glue")
    database = engine.database
    staging = session.get_table(database, STAGING_TABLE)
    if staging is None:
        raise QueryError(f"the build did not create {database}.{STAGING_TABLE}")
    staged = session.partition_inputs_of(database, STAGING_TABLE)
    vacated = {p["Values"][0] for p in staged if p["Values"][1] == VACATED_PRESENCE}
    staged = [p for p in staged if p["Values"][1] != VACATED_PRESENCE]
    if written and {tuple(p["Values"]) for p in staged} != set(written):
        raise QueryError(f"{database}.{STAGING_TABLE}: its partitions do not match its rows")
    for partition in staged:
        orders = written.get(tuple(partition["Values"]))
        partition["Parameters"] = {**partition.get("Parameters", {}),
                                   **({ORDERS_PARAMETER: str(orders)} if orders is not None else {})}
    descriptor = {**staging.raw["StorageDescriptor"], "Location": state_root(engine)}
    date_key = next(key for key in staging.raw["PartitionKeys"] if key["Name"] == STATE_PARTITION_KEYS[0])

    def tables(parameters: dict[str, str]) -> list[dict[str, Any]]:
        """TableInputs of order_latest_event and order_current_state (one date key, same folder)."""
        latest = catalog.table_input(staging.raw, Name=LATEST_EVENT_TABLE, Parameters=parameters,
                                     StorageDescriptor=descriptor)
        current = {"Name": CURRENT_STATE_TABLE, "TableType": "EXTERNAL_TABLE",
                   "StorageDescriptor": descriptor, "PartitionKeys": [date_key], "Parameters": parameters}
        return [latest, current]

    old_values = {tuple(p["Values"]): p for p in old}
    touched = {values[0] for values in old_values} if full else {p["Values"][0] for p in staged} | vacated
    new_values = {tuple(p["Values"]) for p in staged}
    gone = sorted(v for v in old_values if v[0] in touched and v not in new_values)
    # order_current_state mirrors order_latest_event's presence=live partitions, one per date
    live = [{**p, "Values": [p["Values"][0]]} for p in staged if p["Values"][1] == "live"]
    old_live = {v[0] for v in old_values if v[1] == "live"}

    if previous is None:  # the tables must exist before their partitions: created without the parameters
        concurrently(*(lambda table=table: catalog.put_table(glue, database, table)
                       for table in tables(dict(staging.parameters))))
    concurrently(
        lambda: catalog.update_partitions(glue, database, LATEST_EVENT_TABLE,
                                          [p for p in staged if tuple(p["Values"]) in old_values]),
        lambda: catalog.create_partitions(glue, database, LATEST_EVENT_TABLE,
                                          [p for p in staged if tuple(p["Values"]) not in old_values]),
        lambda: catalog.delete_partitions(glue, database, LATEST_EVENT_TABLE, gone),
        lambda: catalog.update_partitions(glue, database, CURRENT_STATE_TABLE,
                                          [p for p in live if p["Values"][0] in old_live]),
        lambda: catalog.create_partitions(glue, database, CURRENT_STATE_TABLE,
                                          [p for p in live if p["Values"][0] not in old_live]),
        lambda: catalog.delete_partitions(glue, database, CURRENT_STATE_TABLE,
                                          sorted((v[0],) for v in gone if v[1] == "live")),
        *alongside,
    )
    for name in (LATEST_EVENT_TABLE, CURRENT_STATE_TABLE):
        session.forget_table(database, name)
    publish = [lambda table=table: glue.update_table(DatabaseName=database, TableInput=table)
               for table in tables({**staging.parameters, **build_parameters})]
    kept = [p for values, p in old_values.items() if values[0] not in touched]
    return kept + staged, new_values, publish


def _count(engine: AthenaEngine, partitions: Iterable[dict[str, Any]]) -> tuple[int, int]:
    """(live, removed) orders: summed from the partitions' parameters, or counted if one lacks it."""
    totals = {"live": 0, "removed": 0}
    for partition in partitions:
        orders = partition.get("Parameters", {}).get(ORDERS_PARAMETER)
        if orders is None:
            break
        totals[partition["Values"][1]] = totals.get(partition["Values"][1], 0) + int(orders)
    else:
        return totals["live"], totals["removed"]
    table = f"{sql_identifier(engine.database, 'database')}.{LATEST_EVENT_TABLE}"
    counts = engine.query(f"SELECT presence, count(*) AS orders FROM {table} GROUP BY presence")  # noqa: S608
    by_presence = dict(zip(counts["presence"], counts["orders"], strict=True))
    return int(by_presence.get("live", 0)), int(by_presence.get("removed", 0))


def _delete_unreferenced(engine: AthenaEngine, session: CatalogSession, keep: Iterable[str]) -> int:
    """Delete every object under the state's root that no kept partition folder holds: builds replaced
    two refreshes ago, files of failed builds. One listing (the refresh's: the build read the state through
    it and added what it wrote; an object put by someone else meanwhile waits for the next refresh),
    batched deletes; returns how many."""
    s3 = engine.target.client("s3")
    bucket, prefix = split_s3_url(state_root(engine))
    folders = {split_s3_url(as_folder(url))[1] for url in keep}
    doomed = [obj.key for obj in session.list_objects(bucket, prefix) if not _under(obj.key, folders, prefix)]
    for begin in range(0, len(doomed), DELETE_BATCH):
        batch = [{"Key": key} for key in doomed[begin:begin + DELETE_BATCH]]
        response = s3.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
        if response.get("Errors"):
            raise QueryError(f"could not delete old build files: {response['Errors'][0]}")
        session.objects_deleted(bucket, [item["Key"] for item in batch])
    return len(doomed)


def _under(key: str, folders: set[str], root: str) -> bool:
    folder = key.rsplit("/", 1)[0] + "/"
    while len(folder) > len(root):
        if folder in folders:
            return True
        folder = folder[:-1].rsplit("/", 1)[0] + "/"
    return False
