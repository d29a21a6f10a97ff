"""The SQL files: they parse as Athena SQL, run on the local engine, and compute what they promise --
checked against an independent model of the same rules in plain Python (Decimal money)."""

from __future__ import annotations

import random
from collections import defaultdict
from contextlib import contextmanager
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
import sqlglot
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from gadget_pipeline.athena import SqlParameterError, engine_for
from gadget_pipeline.athena.current_state import (
    CURRENT_STATE_TABLE,
    LATEST_EVENT_TABLE,
    STAGING_TABLE,
    refresh_order_current_state,
)
from gadget_pipeline.athena.daily_sales import DAILY_SALES_TABLE, build_daily_sales_partition
from gadget_pipeline.athena.engine import load_sql, sql_file_names
from gadget_pipeline.athena.local_engine import LocalDuckDbEngine
from gadget_pipeline.athena.sql_text import (
    bind_parameters,
    fill_placeholders,
    placeholders_in,
    statement_keyword,
)
from gadget_pipeline.aws import AwsTarget
from gadget_pipeline.catalog import crawler_for
from gadget_pipeline.catalog import glue as catalog
from gadget_pipeline.catalog.s3 import clear_prefix
from gadget_pipeline_tests.test_crawler import RAW_TABLE, put_raw_object, raw_event

# What the placeholders and parameters of the SQL files stand for (extend when a file needs a new one).
SAMPLE_NAMES = {
    "database": "gadget_sales", "raw_table": RAW_TABLE, "previous_table": LATEST_EVENT_TABLE,
    "current_state_table": CURRENT_STATE_TABLE, "daily_sales_table": DAILY_SALES_TABLE,
    "target_table": "sql_file_check", "target_location": "s3://gadget-sales-cdc/curated/sql_file_check/",
}
SAMPLE_VALUES = {"from_year": "2024", "from_month": "05", "from_day": "01", "from_hour": "10",
                 "order_date": "2024-05-01", "since": "2024-04-01"}
BUILD_FILES = {"order_current_state", "order_current_state_incremental", "order_current_state_counts",
               "daily_sales_table", "daily_sales"}


def sample_arguments(name: str) -> dict[str, str]:
    template = load_sql(name)
    unknown = placeholders_in(template) - set(SAMPLE_NAMES)
    assert not unknown, f"{name}.sql: add sample values for placeholders {unknown} to SAMPLE_NAMES"
    values = {key: value for key, value in SAMPLE_VALUES.items() if f":{key}" in template}
    return {**{k: v for k, v in SAMPLE_NAMES.items() if k in placeholders_in(template)}, **values}


@pytest.fixture
def engine(aws, deployed, tmp_path):
    with engine_for(aws, deployed, cache_dir=tmp_path / "cache") as local_engine:
        yield local_engine


def crawl_and_build(aws, engine, mode: str = "auto"):
    crawler_for(aws).crawl()
    return refresh_order_current_state(engine, mode=mode)


# ---------------------------------------------------------------------------- the independent model


def seq_key(event: dict[str, Any]) -> tuple[int, str]:
    return len(event["sequence_number"]), event["sequence_number"]


def expected_current_state(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Latest event per order by numeric sequence number (ties: the same event); REMOVE -> absent."""
    latest: dict[str, dict[str, Any]] = {}
    for event in events:
        best = latest.get(event["order_id"])
        if best is None or (seq_key(event), _neg(event["event_id"])) > (seq_key(best),
                                                                         _neg(best["event_id"])):
            latest[event["order_id"]] = event
    return {order_id: e for order_id, e in latest.items() if not e["is_deleted"]}


def _neg(text: str) -> tuple[int, ...]:
    return tuple(-ord(ch) for ch in text)  # smallest event_id wins a tie, as in the SQL


def current_state_rows(engine) -> dict[str, dict[str, Any]]:
    frame = engine.query(f"SELECT * FROM {engine.database}.{CURRENT_STATE_TABLE}")  # noqa: S608
    return {row["order_id"]: row for row in frame.to_dict(orient="records")}


def assert_matches_model(engine, events: list[dict[str, Any]]) -> None:
    rows = current_state_rows(engine)
    expected = expected_current_state(events)
    assert set(rows) == set(expected)
    for order_id, event in expected.items():
        row = rows[order_id]
        assert row["event_id"] == event["event_id"] and row["sequence_number"] == event["sequence_number"]
        assert row["status"] == event["status"] and row["quantity"] == int(event["quantity"])
        assert row["unit_price"] == Decimal(event["unit_price"]) and isinstance(row["unit_price"], Decimal)
        assert row["total_amount"] == Decimal(event["total_amount"])
        assert row["order_date"] == date.fromisoformat(event["order_ts"][:10])


# ---------------------------------------------------------------------------- every file


@pytest.mark.parametrize("name", sql_file_names())
def test_every_sql_file_parses_as_athena_sql(name):
    arguments = sample_arguments(name)
    template = load_sql(name)
    sql = fill_placeholders(template, {k: v for k, v in arguments.items() if k in placeholders_in(template)})
    values = {k: v for k, v in arguments.items() if k not in placeholders_in(template)}
    bound, _ = bind_parameters(sql, values)
    statements = sqlglot.parse(bound, read="athena")
    assert len(statements) == 1 and statements[0] is not None


def test_every_sql_file_runs_on_the_local_engine(aws, deployed, engine):
    put_raw_object(aws.client("s3"), deployed["BucketName"], "2024-05-01T10", "a",
                   [raw_event("o1", 1, event="INSERT"), raw_event("o2", 2, event="INSERT", product="buds")])
    crawl_and_build(aws, engine)  # runs order_current_state.sql
    put_raw_object(aws.client("s3"), deployed["BucketName"], "2024-05-01T11", "b", [raw_event("o1", 3)])
    assert crawl_and_build(aws, engine).mode == "incremental"  # runs order_current_state_incremental.sql
    build_daily_sales_partition(engine, "2024-05-01")  # runs daily_sales_table.sql and daily_sales.sql
    for name in sql_file_names():
        if name in BUILD_FILES:
            continue
        assert statement_keyword(load_sql(name)) in ("SELECT", "WITH"), f"{name}.sql: only queries run here"
        frame = engine.run_sql_file(name, **sample_arguments(name))
        assert frame is not None and len(frame.columns) > 0, name


# ---------------------------------------------------------------------------- order_current_state


CHANGES = [
    # o1: inserted, updated twice, the update delivered before the insert (other partition, other object)
    ("2024-05-01T10", "a", [raw_event("o1", 120, status="SHIPPED", quantity=2)]),
    ("2024-05-01T11", "b", [raw_event("o1", 100, event="INSERT", quantity=1),
                            raw_event("o1", 110, status="PLACED", quantity=2)]),
    # o2: inserted then removed; the REMOVE duplicated into another object
    ("2024-05-01T10", "c", [raw_event("o2", 200, event="INSERT", product="buds"),
                            raw_event("o2", 210, event="REMOVE", product="buds")]),
    ("2024-05-01T12", "d", [raw_event("o2", 210, event="REMOVE", product="buds")]),
    # o3: sequence numbers of different lengths (text order would pick "9...") and 40 digits
    ("2024-05-01T12", "e", [raw_event("o3", "9" * 20, event="INSERT", product="kindle"),
                            raw_event("o3", "1" + "0" * 39, status="DELIVERED", product="kindle",
                                      quantity=3)]),
    # o4: removed, then created again with the same key
    ("2024-05-01T11", "f", [raw_event("o4", 400, event="INSERT"), raw_event("o4", 410, event="REMOVE"),
                            raw_event("o4", 420, event="INSERT", quantity=5,
                                      order_ts="2024-05-02T08:00:00Z")]),
    # o5: the same event delivered three times, twice in one object
    ("2024-05-01T10", "g", [raw_event("o5", 500, event="INSERT", status="CANCELLED")] * 2),
    ("2024-05-01T12", "h", [raw_event("o5", 500, event="INSERT", status="CANCELLED")]),
]


def test_current_state_matches_the_model_with_changes_duplicates_and_reordering(aws, deployed, engine):
    s3, bucket = aws.client("s3"), deployed["BucketName"]
    for hour, name, events in CHANGES:
        put_raw_object(s3, bucket, hour, name, events, compress=name in ("b", "e"))
    build = crawl_and_build(aws, engine)
    events = [event for _, _, batch in CHANGES for event in batch]
    assert build.mode == "full" and build.raw_watermark == "2024/05/01/12"
    assert (build.live_orders, build.removed_orders) == (4, 1)
    assert_matches_model(engine, events)
    frame = engine.query(f"SELECT * FROM {CURRENT_STATE_TABLE}")  # noqa: S608
    assert str(frame["unit_price"].dtype) == "object" and str(frame["quantity"].dtype) == "Int64"
    assert str(frame["order_ts"].dtype) == "datetime64[us]"
    table = catalog.get_table(aws.client("glue"), deployed["GlueDatabaseName"], CURRENT_STATE_TABLE)
    types = {c.name: c.type for c in table.all_columns}  # order_date is its partition column
    assert types["unit_price"] == "decimal(12,2)" and types["total_amount"] == "decimal(14,2)"
    assert types["quantity"] == "int" and types["order_date"] == "date" and types["order_ts"] == "timestamp"
    assert table.location.startswith(deployed["CuratedLocation"] + "order_current_state/")


def put_changes(s3, bucket: str) -> None:
    """The raw objects of CHANGES, uncompressed."""
    for hour, name, events in CHANGES:
        put_raw_object(s3, bucket, hour, name, events)


def test_incremental_refresh_equals_a_full_rebuild_and_reads_only_new_partitions(aws, deployed, engine):
    s3, bucket = aws.client("s3"), deployed["BucketName"]
    put_changes(s3, bucket)
    first = crawl_and_build(aws, engine)
    later = [
        ("2024-05-01T13", "i", [raw_event("o1", 130, status="DELIVERED", quantity=2),
                                raw_event("o2", 205, status="LATE")]),  # older than o2's REMOVE: no effect
        ("2024-05-01T14", "j", [raw_event("o6", 600, event="INSERT", product="kindle"),
                                raw_event("o5", 510, event="REMOVE")]),
        ("2024-05-01T12", "late", [raw_event("o3", "2" + "0" * 39, status="RETURNED", product="kindle")]),
        ("2024-05-01T10", "ancient", [raw_event("o7", 700, event="INSERT")]),  # outside the lookback window
    ]
    for hour, name, events in later:
        put_raw_object(s3, bucket, hour, name, events)
    incremental = crawl_and_build(aws, engine)

    # the lookback window starts at hour 11 (watermark 12 - 1 hour), but hour 11 has not changed since the
    # first build listed it: the refresh re-reads from hour 12, where the late object landed
    assert incremental.mode == "incremental" and incremental.from_partition == "2024/05/01/12"
    everything = [e for _, _, batch in CHANGES + later for e in batch]
    seen = [e for _, name, batch in CHANGES + later for e in batch if name != "ancient"]
    assert_matches_model(engine, seen)  # the late object in hour 12 is caught by the 1-hour lookback
    full = refresh_order_current_state(engine, mode="full")
    assert_matches_model(engine, everything)
    assert full.live_orders == incremental.live_orders + 1
    # only files that the current or the previous catalog state references are kept: the incremental
    # refresh rewrote 2024-05-01 only, so o4's 2024-05-02 partition was still the first build's
    assert build_folders(s3, bucket) == {first.build_id, incremental.build_id, full.build_id}
    again = refresh_order_current_state(engine, mode="full")
    assert build_folders(s3, bucket) == {full.build_id, again.build_id}


def test_a_refresh_asks_the_catalog_each_question_once_and_drops_a_left_over_staging_table(
        aws, deployed, engine):
    s3, bucket, database = aws.client("s3"), deployed["BucketName"], deployed["GlueDatabaseName"]
    put_changes(s3, bucket)
    crawl_and_build(aws, engine)
    update = raw_event("o1", 130, status="DELIVERED")
    put_raw_object(s3, bucket, "2024-05-01T13", "i", [update])
    crawler_for(aws).crawl()
    # a build that failed half-way left its staging table behind
    catalog.put_table(aws.client("glue"), database, {
        "Name": STAGING_TABLE, "TableType": "EXTERNAL_TABLE",
        "StorageDescriptor": catalog.storage_descriptor([], f"s3://{bucket}/curated/failed/", "parquet")})
    asked: list[tuple[str, str]] = []

    def record(params, model, **_kwargs) -> None:
        asked.append((model.name, params.get("TableName") or params.get("Name", "")))

    listed: list[tuple[str, str]] = []

    def record_listing(params, **_kwargs) -> None:
        listed.append((params["Prefix"], params.get("StartAfter", "")))

    glue = aws.client("glue")
    events = [(glue, "before-parameter-build.glue.GetTable", record),
              (glue, "before-parameter-build.glue.GetPartitions", record),
              (s3, "before-parameter-build.s3.ListObjectsV2", record_listing)]
    for client, event, handler in events:
        client.meta.events.register(event, handler)
    statements: list[str] = []
    run_sql_file = engine.run_sql_file

    def record_statement(name: str, **params: Any) -> Any:
        statements.append(name)
        return run_sql_file(name, **params)

    engine.run_sql_file = record_statement
    try:
        incremental = refresh_order_current_state(engine)
    finally:
        del engine.run_sql_file
        for client, event, handler in events:
            client.meta.events.unregister(event, handler)

    assert incremental.mode == "incremental"
    assert_matches_model(engine, [e for _, _, batch in CHANGES for e in batch] + [update])
    assert len(asked) == len(set(asked)), asked  # the watermark lookup and the engine share one answer
    # one statement: the local engine counted each partition's rows as it wrote them (no count query)
    assert statements == ["order_current_state_incremental"]
    counted = engine.query("SELECT presence, count(*) AS n FROM order_latest_event GROUP BY presence")
    by_presence = dict(zip(counted["presence"], counted["n"], strict=True))
    assert (incremental.live_orders, incremental.removed_orders) == (by_presence.get("live", 0),
                                                                     by_presence.get("removed", 0))
    assert ("GetPartitions", RAW_TABLE) in asked
    assert catalog.get_table(glue, database, STAGING_TABLE) is None
    # the raw window (hours 11..13) is listed once, from its first hour folder on; not folder by folder
    raw_listings = [entry for entry in listed if entry[0].startswith("raw/")]
    window_start = "raw/gadget_orders_cdc/year=2024/month=05/day=01/hour=11"
    assert raw_listings == [("raw/gadget_orders_cdc/", window_start)]
    assert len(listed) == len(set(listed)), listed


def test_a_refresh_without_new_raw_objects_writes_nothing_and_a_late_one_is_read(aws, deployed, engine):
    s3, bucket = aws.client("s3"), deployed["BucketName"]
    put_changes(s3, bucket)
    first = crawl_and_build(aws, engine)
    before = partition_objects(aws, deployed, LATEST_EVENT_TABLE)

    again = crawl_and_build(aws, engine)
    assert (again.mode, again.build_id, again.rows_written) == ("unchanged", first.build_id, 0)
    assert (again.live_orders, again.removed_orders) == (first.live_orders, first.removed_orders)
    assert partition_objects(aws, deployed, LATEST_EVENT_TABLE) == before

    # an object lands late in hour 11, inside the lookback window of the watermark (hour 12)
    late = raw_event("o1", 150, status="RETURNED", quantity=4)
    put_raw_object(s3, bucket, "2024-05-01T11", "late", [late])
    caught = crawl_and_build(aws, engine)
    assert (caught.mode, caught.from_partition) == ("incremental", "2024/05/01/11")
    assert_matches_model(engine, [e for _, _, batch in CHANGES for e in batch] + [late])


class EngineOutsideTheSession(LocalDuckDbEngine):
    """Like Athena: the engine registers tables itself and never tells the refresh's catalog session."""

    @contextmanager
    def using(self, session):
        yield session


def test_refreshes_work_when_the_engine_registers_tables_behind_the_session(aws, deployed, tmp_path):
    s3, bucket = aws.client("s3"), deployed["BucketName"]
    put_changes(s3, bucket)
    update = raw_event("o1", 130, status="DELIVERED")
    with EngineOutsideTheSession(aws, deployed, cache_dir=tmp_path / "cache") as engine:
        first = crawl_and_build(aws, engine)
        put_raw_object(s3, bucket, "2024-05-01T13", "i", [update])
        incremental = crawl_and_build(aws, engine)
        assert (first.mode, incremental.mode) == ("full", "incremental")
        assert_matches_model(engine, [e for _, _, batch in CHANGES for e in batch] + [update])


def build_folders(s3, bucket: str) -> set[str]:
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="curated/order_current_state/")["Contents"]
    return {o["Key"].split("/")[2] for o in listed}


def partition_objects(aws, deployed, table: str) -> dict[tuple[str, ...], set[tuple[str, str]]]:
    """Each partition of a table -> the (key, ETag) of the objects in its folder."""
    s3 = aws.client("s3")
    result = {}
    for partition in catalog.get_partitions(aws.client("glue"), deployed["GlueDatabaseName"], table):
        bucket, prefix = partition.location[len("s3://"):].split("/", 1)
        listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
        result[partition.values] = {(o["Key"], o["ETag"]) for o in listed}
    return result


def test_incremental_refresh_rewrites_only_the_order_dates_it_touches(aws, deployed, engine):
    s3, bucket = aws.client("s3"), deployed["BucketName"]
    day = {d: f"2024-05-0{d}T08:00:00Z" for d in range(1, 6)}
    history = [  # orders placed on four dates; o4 is removed; o5 is the only order of 2024-05-05
        raw_event("o1", 100, event="INSERT", order_ts=day[1]),
        raw_event("o2", 101, event="INSERT", order_ts=day[2]),
        raw_event("o3", 102, event="INSERT", order_ts=day[3]),
        raw_event("o4", 103, event="INSERT", order_ts=day[3]),
        raw_event("o4", 104, event="REMOVE", order_ts=day[3]),
        raw_event("o5", 105, event="INSERT", order_ts=day[5]),
    ]
    put_raw_object(s3, bucket, "2024-05-01T10", "a", history)
    first = crawl_and_build(aws, engine)
    assert first.dates_total == 4
    before = partition_objects(aws, deployed, LATEST_EVENT_TABLE)
    assert set(before) == {("2024-05-01", "live"), ("2024-05-02", "live"), ("2024-05-03", "live"),
                           ("2024-05-03", "removed"), ("2024-05-05", "live")}
    later = [
        raw_event("o3", 110, status="SHIPPED", order_ts=day[3]),  # an update on 2024-05-03
        raw_event("o6", 111, event="INSERT", order_ts=day[3]),  # a new order on 2024-05-03
        raw_event("o4", 99, event="INSERT", order_ts=day[3]),  # late and older: o4 stays removed
        raw_event("o1", 100, event="INSERT", order_ts=day[1]),  # a duplicate: changes nothing
        raw_event("o5", 112, event="REMOVE", order_ts=day[5]),
        raw_event("o5", 113, event="INSERT", order_ts=day[4]),  # created again on another date
    ]
    put_raw_object(s3, bucket, "2024-05-01T11", "b", later)
    incremental = crawl_and_build(aws, engine)

    assert incremental.mode == "incremental"
    assert_matches_model(engine, history + later)
    after = partition_objects(aws, deployed, LATEST_EVENT_TABLE)
    # 2024-05-01 (a duplicate only) and 2024-05-02 were not touched: same objects, not rewritten
    for untouched in (("2024-05-01", "live"), ("2024-05-02", "live")):
        assert after[untouched] == before[untouched] and after[untouched]
    # 2024-05-03 was rewritten whole, 2024-05-04 is new, 2024-05-05 was emptied (o5 moved) and is gone
    assert incremental.dates_rewritten == 2 and incremental.rows_written == 4  # o3, o4, o6 | o5
    assert set(after) == {("2024-05-01", "live"), ("2024-05-02", "live"), ("2024-05-03", "live"),
                          ("2024-05-03", "removed"), ("2024-05-04", "live")}
    for touched in (("2024-05-03", "live"), ("2024-05-03", "removed"), ("2024-05-04", "live")):
        assert all(f"/{incremental.build_id}/" in key for key, _ in after[touched])
    current = partition_objects(aws, deployed, CURRENT_STATE_TABLE)
    assert current == {(values[0],): objects for values, objects in after.items() if values[1] == "live"}
    assert (incremental.live_orders, incremental.removed_orders) == (5, 1)

    full = refresh_order_current_state(engine, mode="full")
    assert_matches_model(engine, history + later)
    assert (full.live_orders, full.removed_orders, full.dates_total) == (5, 1, 4)


# Each example runs a crawl and a CTAS (~0.5 s): no shrinking, which would take minutes; a failure still
# prints the whole example.
@settings(max_examples=25, deadline=None, phases=(Phase.explicit, Phase.reuse, Phase.generate),
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_current_state_is_invariant_under_duplication_and_shuffling(aws, deployed, engine, data):
    s3, bucket, database = aws.client("s3"), deployed["BucketName"], deployed["GlueDatabaseName"]
    clear_prefix(s3, deployed["RawLocation"])
    catalog.delete_table(aws.client("glue"), database, RAW_TABLE)
    orders = data.draw(st.integers(1, 4), label="orders")
    events = []
    for order in range(orders):
        sequences = data.draw(st.lists(st.integers(1, 10**12), min_size=1, max_size=4, unique=True),
                              label="sequence numbers")
        for sequence in sequences:
            kind = data.draw(st.sampled_from(["INSERT", "MODIFY", "REMOVE"]), label="kind")
            events.append(raw_event(f"o{order}", sequence, event=kind, status=f"S{sequence % 7}",
                                    quantity=sequence % 5 + 1))
    copies = [e for e in events for _ in range(data.draw(st.integers(1, 3), label="copies"))]
    shuffled = data.draw(st.permutations(copies), label="delivery order")
    placement = data.draw(st.lists(st.integers(0, 5), min_size=len(shuffled), max_size=len(shuffled)))
    objects: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for event, slot in zip(shuffled, placement, strict=True):
        objects[slot].append(event)
    for slot, batch in objects.items():  # 3 hour partitions x 2 objects
        put_raw_object(s3, bucket, f"2024-05-01T1{slot // 2}", f"obj-{slot % 2}", batch)

    crawler_for(aws).crawl()
    refresh_order_current_state(engine, mode="full", count_rows=False)
    assert_matches_model(engine, events)


# ---------------------------------------------------------------------------- daily_sales


def expected_daily_sales(events: list[dict[str, Any]], day: date) -> dict[tuple[str, ...], tuple]:
    totals: dict[tuple[str, ...], list] = defaultdict(lambda: [0, 0, Decimal("0")])
    for event in expected_current_state(events).values():
        if event["status"] != "CANCELLED" and event["order_ts"][:10] == day.isoformat():
            key = (event["product_name"], event["brand"], event["category"], event["currency"])
            totals[key][0] += 1
            totals[key][1] += int(event["quantity"])
            totals[key][2] += Decimal(event["total_amount"])
    return {key: tuple(value) for key, value in totals.items()}


def daily_sales_rows(engine, day: date) -> dict[tuple[str, ...], tuple]:
    frame = engine.query(f"SELECT * FROM {DAILY_SALES_TABLE} WHERE order_date = ?", [day])  # noqa: S608
    return {(r["product_name"], r["brand"], r["category"], r["currency"]):
            (r["orders"], r["units"], r["revenue"]) for r in frame.to_dict(orient="records")}


def test_daily_sales_partition_is_exact_and_rebuilds_idempotently(aws, deployed, engine):
    s3, bucket = aws.client("s3"), deployed["BucketName"]
    rng = random.Random(7)
    events = []
    for i in range(40):
        product = rng.choice(list(("pixel", "buds", "kindle")))
        day = rng.choice(["2024-05-01", "2024-05-02"])
        events.append(raw_event(
            f"o{i}", 1000 + i, event="INSERT", product=product, quantity=rng.randint(1, 3),
            currency=rng.choice(["USD", "EUR"]), order_ts=f"{day}T0{rng.randint(0, 9)}:00:00Z",
            status=rng.choice(["PLACED", "SHIPPED", "CANCELLED"]),
        ))
    events.append(raw_event("o0", 5000, event="REMOVE"))
    put_raw_object(s3, bucket, "2024-05-01T10", "orders", events)
    crawl_and_build(aws, engine)

    first = build_daily_sales_partition(engine, date(2024, 5, 1))
    other = build_daily_sales_partition(engine, "2024-05-02")
    again = build_daily_sales_partition(engine, date(2024, 5, 1))

    for day in (date(2024, 5, 1), date(2024, 5, 2)):
        expected = expected_daily_sales(events, day)
        assert daily_sales_rows(engine, day) == expected
    assert first.rows == again.rows == len(expected_daily_sales(events, date(2024, 5, 1)))
    assert again.objects_replaced == 1 and other.rows == len(expected_daily_sales(events, date(2024, 5, 2)))
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="curated/daily_sales/")["Contents"]]
    assert len(keys) == 2
    assert {k.split("/")[2] for k in keys} == {"order_date=2024-05-01", "order_date=2024-05-02"}
    revenue = engine.query(f"SELECT sum(revenue) AS total FROM {DAILY_SALES_TABLE}")["total"][0]  # noqa: S608
    assert isinstance(revenue, Decimal)


# ---------------------------------------------------------------------------- parameters


@pytest.mark.parametrize("names", [
    {"database": "gadget_sales; DROP TABLE gadget_sales.daily_sales --"},
    {"target_table": "daily_sales WHERE 1=1"},
    {"target_location": "s3://bucket/x' OR '1'='1"},
    {"target_location": "s3://bucket/../../etc/"},
    {"target_location": "https://bucket/x/"},
    {"database": "Gadget_Sales"},
    {"database": 42},
])
def test_sql_placeholders_refuse_injection_with_one_clear_error(tmp_path, names):
    # refused before any SQL runs or any AWS call is made: no server needed
    engine = LocalDuckDbEngine(AwsTarget.local("http://127.0.0.1:9"), {"GlueDatabaseName": "gadget_sales"},
                               cache_dir=tmp_path)
    params = {"database": "gadget_sales", "target_table": "daily_sales",
              "target_location": "s3://gadget-sales-cdc/curated/daily_sales/", **names}
    with pytest.raises(SqlParameterError, match="must match"):
        engine.run_sql_file("daily_sales_table", **params)


def test_values_are_bound_never_pasted(aws, deployed, engine):
    s3, bucket = aws.client("s3"), deployed["BucketName"]
    put_raw_object(s3, bucket, "2024-05-01T10", "a", [raw_event("o1", 1, event="INSERT")])
    crawl_and_build(aws, engine)
    hostile = "o1' OR '1'='1"
    frame = engine.query(f"SELECT order_id FROM {CURRENT_STATE_TABLE} WHERE order_id = :id", {"id": hostile})
    assert frame.empty
    assert len(engine.query(f"SELECT * FROM {LATEST_EVENT_TABLE}")) == 1  # noqa: S608
    with pytest.raises(SqlParameterError, match="no value for SQL parameter :id"):
        engine.query("SELECT :id", {})
    with pytest.raises(SqlParameterError, match="not used"):
        engine.query("SELECT 1", {"id": 1})
    with pytest.raises(SqlParameterError, match="1 \\? parameter"):
        engine.query("SELECT ?", [1, 2])
