"""The Athena engines: the local one against a real moto server (reads, CTAS/INSERT/DROP/DDL with the
catalog state Athena would leave, errors), the AWS one without AWS (lazy, parameters, result shape)."""

from __future__ import annotations

import datetime as dt
import os
import threading
import time
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
import sqlglot
from sqlglot import exp

from gadget_pipeline.athena import QueryError, SqlParameterError, engine_for
from gadget_pipeline.athena.aws_engine import AwsAthenaEngine
from gadget_pipeline.athena.cli import render
from gadget_pipeline.athena.local_engine import LocalDuckDbEngine
from gadget_pipeline.athena.local_tables import IDLE_SECONDS
from gadget_pipeline.athena.partition_pruning import glue_partition_filter
from gadget_pipeline.athena.sql_text import athena_literal, bind_parameters
from gadget_pipeline.aws import AwsTarget
from gadget_pipeline.catalog import crawler_for
from gadget_pipeline.catalog import glue as catalog
from gadget_pipeline.config import ConfigError
from gadget_pipeline_tests.test_crawler import RAW_TABLE, hour_prefix, put_raw_object, raw_event

TYPED = """
    SELECT order_id,
           CAST(unit_price AS DECIMAL(12, 2)) AS unit_price,
           CAST(quantity AS INTEGER) AS quantity,
           CAST(from_iso8601_timestamp(order_ts) AS TIMESTAMP) AS order_ts,
           CAST(CAST(from_iso8601_timestamp(order_ts) AS TIMESTAMP) AS DATE) AS order_date,
           is_deleted, shipping.city AS city, hour
    FROM gadget_orders_cdc
"""


@pytest.fixture
def engine(aws, deployed, tmp_path):
    with engine_for(aws, deployed, cache_dir=tmp_path / "cache") as local_engine:
        yield local_engine


@pytest.fixture
def raw(aws, deployed):
    """Two hours of raw events, crawled."""
    s3, bucket = aws.client("s3"), deployed["BucketName"]
    put_raw_object(s3, bucket, "2024-05-01T10", "a", [raw_event("o1", 1, event="INSERT", quantity=2)])
    put_raw_object(s3, bucket, "2024-05-01T11", "b", [raw_event("o2", 2, event="INSERT", product="buds"),
                                                      raw_event("o1", 3, status="SHIPPED", quantity=2)],
                   compress=True)
    crawler_for(aws).crawl()
    return deployed


def curated(deployed, name: str) -> str:
    return f"{deployed['CuratedLocation']}{name}/"


def test_engine_for_picks_the_world_and_the_aws_engine_is_lazy(deployed, aws):
    assert isinstance(engine_for(aws, deployed), LocalDuckDbEngine)
    remote = engine_for(AwsTarget(endpoint_url=None), deployed)
    assert isinstance(remote, AwsAthenaEngine) and remote._connection is None
    assert remote.work_group == deployed["AthenaWorkGroupName"]
    assert remote.s3_staging_dir == deployed["AthenaResultsLocation"]


def test_query_reads_the_glue_table_with_exact_types(engine, raw):
    frame = engine.query(TYPED + " WHERE hour = ? ORDER BY order_id", ["11"])
    assert frame["order_id"].tolist() == ["o1", "o2"]
    assert frame["unit_price"].tolist() == [Decimal("999.00"), Decimal("179.99")]
    assert all(type(v) is Decimal for v in frame["unit_price"])
    assert frame["order_date"].tolist() == [dt.date(2024, 5, 1)] * 2
    assert frame["order_ts"][0] == pd.Timestamp("2024-05-01 09:30:00")  # UTC, whatever the host's zone
    assert {c: str(t) for c, t in frame.dtypes.items()} == {
        "order_id": "str", "unit_price": "object", "quantity": "Int64", "order_ts": "datetime64[us]",
        "order_date": "object", "is_deleted": "boolean", "city": "str", "hour": "str",
    }
    total = engine.query("SELECT sum(CAST(quantity AS INTEGER)) AS units FROM gadget_orders_cdc")
    assert str(total["units"].dtype) == "Int64" and total["units"][0] == 5  # bigint, as Athena's sum


def test_changed_objects_are_read_again_and_unregistered_partitions_are_not_read(aws, engine, raw):
    s3, bucket = aws.client("s3"), raw["BucketName"]
    assert len(engine.query("SELECT * FROM gadget_orders_cdc")) == 3
    put_raw_object(s3, bucket, "2024-05-01T10", "a", [raw_event("o1", 1), raw_event("o9", 9)])  # new ETag
    put_raw_object(s3, bucket, "2024-05-01T12", "c", [raw_event("o3", 4)])  # partition not crawled yet
    s3.put_object(Bucket=bucket, Key=hour_prefix("2024-05-01T10") + "_SUCCESS", Body=b"done")
    orders = engine.query("SELECT order_id FROM gadget_orders_cdc")["order_id"]
    assert sorted(orders) == ["o1", "o1", "o2", "o9"]


def test_a_malformed_json_line_fails_the_query_like_athena_unless_the_table_ignores_it(aws, engine, raw):
    s3, bucket = aws.client("s3"), raw["BucketName"]
    key = hour_prefix("2024-05-01T10") + "torn"
    torn = b'{"order_id": "o7", "sequence_number": "7"}\n{"order_id": "o8"\n'  # the 2nd line is cut off
    s3.put_object(Bucket=bucket, Key=key, Body=torn)
    with pytest.raises(QueryError) as failure:
        engine.query("SELECT order_id FROM gadget_orders_cdc")
    message = str(failure.value)
    assert message.startswith("query failed: ") and "\n" not in message
    assert f"s3://{bucket}/{key}" in message  # the S3 object, not the engine's cached copy

    # Athena's JSON SerDe reads such a line as a row of NULLs when the table says so
    glue = aws.client("glue")
    table = glue.get_table(DatabaseName=raw["GlueDatabaseName"], Name=RAW_TABLE)["Table"]
    descriptor = table["StorageDescriptor"]
    descriptor["SerdeInfo"]["Parameters"]["ignore.malformed.json"] = "true"
    glue.update_table(DatabaseName=raw["GlueDatabaseName"],
                      TableInput=catalog.table_input(table, StorageDescriptor=descriptor))
    orders = engine.query("SELECT order_id FROM gadget_orders_cdc")["order_id"]
    assert sorted(orders.dropna()) == ["o1", "o1", "o2", "o7"] and orders.isna().sum() == 1


def cached_files(cache: Path) -> list[Path]:
    return sorted(path for path in cache.rglob("*") if path.is_file())


def test_the_cache_drops_copies_of_deleted_objects_and_idle_folders(aws, deployed, raw, tmp_path):
    s3, bucket, cache = aws.client("s3"), raw["BucketName"], tmp_path / "cache"
    with engine_for(aws, deployed, cache_dir=cache) as engine:
        assert len(engine.query("SELECT * FROM gadget_orders_cdc")) == 3
        assert len(cached_files(cache)) == 2
        s3.delete_object(Bucket=bucket, Key=hour_prefix("2024-05-01T10") + "a")
        assert sorted(engine.query("SELECT order_id FROM gadget_orders_cdc")["order_id"]) == ["o1", "o2"]
        remaining = cached_files(cache)
        assert len(remaining) == 1 and remaining[0].name.endswith("b.gz")  # the deleted object's copy went

    # a table folder nobody used for a while and an old read-back copy go with the next engine's first read
    idle, read_back = cache / "0123456789abcdef", cache / "written" / "0123-etag"
    (idle / "hour=09").mkdir(parents=True)
    (idle / "hour=09" / "old.json").write_text("{}")
    read_back.parent.mkdir(parents=True, exist_ok=True)
    read_back.write_text("parquet")
    long_ago = time.time() - IDLE_SECONDS - 60
    for path in (read_back, idle):
        os.utime(path, (long_ago, long_ago))
    with engine_for(aws, deployed, cache_dir=cache) as engine:
        assert len(engine.query("SELECT * FROM gadget_orders_cdc")) == 2
    assert not idle.exists() and not read_back.exists()
    assert len(cached_files(cache)) == 1  # the table just read keeps its copy


def test_the_tables_a_statement_reads_are_fetched_at_once(aws, engine, raw, monkeypatch):
    engine.execute(f"CREATE TABLE shipped WITH (format = 'PARQUET', external_location = "
                   f"'{curated(raw, 'shipped')}') AS SELECT order_id, status FROM gadget_orders_cdc")
    local_files, both_fetching = engine.tables._local_files, threading.Barrier(2, timeout=10)

    def meet_the_other_fetch(*args, **kwargs):  # serial fetches would never meet: BrokenBarrierError
        both_fetching.wait()
        return local_files(*args, **kwargs)

    monkeypatch.setattr(engine.tables, "_local_files", meet_the_other_fetch)
    frame = engine.query("SELECT count(*) AS n FROM gadget_orders_cdc AS c JOIN shipped AS s "
                         "ON s.order_id = c.order_id WHERE s.status = 'SHIPPED'")
    assert frame["n"].tolist() == [2]  # o1's two events join its one SHIPPED row


def test_a_statement_whose_cached_copy_vanishes_mid_way_runs_once_more(aws, engine, raw, monkeypatch):
    assert len(engine.query("SELECT * FROM gadget_orders_cdc")) == 3
    expose_all, vanished = engine.tables.expose_all, []

    def expose_then_lose_a_copy(*args, **kwargs):  # another engine trims the cache after this one listed
        expose_all(*args, **kwargs)
        if not vanished:
            vanished.append(cached_files(engine.tables.cache_dir)[0])
            vanished[0].unlink()

    monkeypatch.setattr(engine.tables, "expose_all", expose_then_lose_a_copy)
    assert len(engine.query("SELECT * FROM gadget_orders_cdc")) == 3
    assert vanished and vanished[0].exists()  # fetched again by the second run of the statement


def test_partition_predicates_prune_through_the_glue_catalog(aws, engine, raw, tmp_path):
    frame = engine.query("SELECT order_id FROM gadget_orders_cdc WHERE hour >= :hour AND order_id <> 'x'",
                         {"hour": "11"})
    assert sorted(frame["order_id"]) == ["o1", "o2"]
    cached = [p.name for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    assert len(cached) == 1 and cached[0].endswith("b.gz")  # hour=10's object was never fetched


def test_glue_partition_filters_are_exact_or_absent():
    def pushed(sql, params=None):
        query = sqlglot.parse_one(sql, read="athena")
        return glue_partition_filter(next(query.find_all(exp.Table)), {"year", "hour"}, params or {})

    assert pushed("SELECT * FROM t WHERE year = '2024' AND (hour > :p1 OR '05' = hour) AND x = 1",
                  {"p1": "10"}) == "year = '2024' AND (hour > '10' OR hour = '05')"
    assert pushed("SELECT * FROM t WHERE (hour > '10' OR hour = '05') AND year = '2024'") == (
        "(hour > '10' OR hour = '05') AND year = '2024'")
    assert pushed("SELECT * FROM t WHERE year = '2024' OR (year = '2023' AND hour >= '10')") == (
        "year = '2024' OR (year = '2023' AND hour >= '10')")
    assert pushed("SELECT * FROM t WHERE hour > '10' OR x = 1") is None  # OR with a data column: not exact
    assert pushed("SELECT * FROM t WHERE concat(year, hour) > '2024'") is None
    assert pushed("SELECT * FROM t WHERE hour = :p1", {"p1": "1' OR '1'='1"}) is None  # not a plain value
    assert pushed("SELECT * FROM t JOIN u ON t.a = u.a WHERE hour = '10'") is None


def test_ctas_writes_parquet_and_registers_the_table_like_athena(aws, engine, raw):
    location = curated(raw, "by_hour")
    engine.execute(f"""
        CREATE TABLE gadget_sales.by_hour
        WITH (format = 'PARQUET', external_location = '{location}', partitioned_by = ARRAY['hour'])
        AS SELECT order_id, CAST(sum(CAST(total_amount AS DECIMAL(14, 2))) AS DECIMAL(16, 2)) AS revenue,
                  count(*) AS events, hour
           FROM gadget_sales.gadget_orders_cdc GROUP BY order_id, hour
    """)
    glue = aws.client("glue")
    table = glue.get_table(DatabaseName="gadget_sales", Name="by_hour")["Table"]
    descriptor = table["StorageDescriptor"]
    assert [(c["Name"], c["Type"]) for c in descriptor["Columns"]] == [
        ("order_id", "string"), ("revenue", "decimal(16,2)"), ("events", "bigint")]
    assert table["PartitionKeys"] == [{"Name": "hour", "Type": "string"}]
    assert descriptor["SerdeInfo"]["SerializationLibrary"] == catalog.PARQUET_SERDE
    assert descriptor["InputFormat"] == catalog.PARQUET_INPUT_FORMAT and descriptor["Location"] == location
    registered = glue.get_partitions(DatabaseName="gadget_sales", TableName="by_hour")["Partitions"]
    partitions = {tuple(p["Values"]): p["StorageDescriptor"]["Location"] for p in registered}
    assert partitions == {("10",): location + "hour=10/", ("11",): location + "hour=11/"}
    keys = [o["Key"] for o in aws.client("s3").list_objects_v2(Bucket=raw["BucketName"],
                                                               Prefix="curated/by_hour/")["Contents"]]
    assert len(keys) == 2 and all(k.endswith(".parquet") for k in keys)
    frame = engine.query("SELECT * FROM by_hour ORDER BY hour, order_id")
    assert frame["revenue"].tolist() == [Decimal("1998.00"), Decimal("1998.00"), Decimal("179.99")]

    with pytest.raises(QueryError, match="already exists"):
        engine.execute(f"CREATE TABLE by_hour WITH (external_location = '{curated(raw, 'x')}') AS SELECT 1 a")
    with pytest.raises(QueryError, match="HIVE_PATH_ALREADY_EXISTS"):
        engine.execute(f"CREATE TABLE other WITH (external_location = '{location}') AS SELECT 1 AS a")
    with pytest.raises(QueryError, match="must be the last columns"):
        engine.execute(f"CREATE TABLE other WITH (external_location = '{curated(raw, 'y')}', "
                       "partitioned_by = ARRAY['a']) AS SELECT 1 AS a, 2 AS b")
    # a query that fails while it runs (the table is registered meanwhile) leaves no table behind
    with pytest.raises(QueryError, match="query failed"):
        engine.execute(f"CREATE TABLE broken WITH (external_location = '{curated(raw, 'z')}') "
                       "AS SELECT CAST(order_id AS INTEGER) AS a FROM gadget_sales.gadget_orders_cdc")
    assert catalog.get_table(glue, "gadget_sales", "broken") is None


def test_a_ctas_racing_another_job_for_the_table_neither_replaces_nor_drops_it(aws, engine, raw, monkeypatch):
    from gadget_pipeline.athena import local_writes

    engine.execute(f"CREATE TABLE gadget_sales.theirs WITH (external_location = '{curated(raw, 'theirs')}') "
                   "AS SELECT 1 AS a")
    # the other job created it after this CTAS checked: the check saw no table
    monkeypatch.setattr(local_writes.catalog, "get_table", lambda *_args: None)
    with pytest.raises(QueryError, match="already exists"):
        engine.execute(f"CREATE TABLE gadget_sales.theirs WITH (external_location = "
                       f"'{curated(raw, 'mine')}') AS SELECT 'x' AS b")
    monkeypatch.undo()
    table = catalog.get_table(aws.client("glue"), "gadget_sales", "theirs")
    assert table is not None and [c.name for c in table.columns] == ["a"]
    assert table.location == curated(raw, "theirs")


def test_insert_appends_files_and_partitions_and_checks_types(aws, engine, raw):
    location = curated(raw, "facts")
    engine.execute(f"CREATE TABLE facts WITH (external_location = '{location}', "
                   "partitioned_by = ARRAY['day']) "
                   "AS SELECT 'a' AS name, CAST(1.50 AS DECIMAL(10, 2)) AS amount, DATE '2024-05-01' AS day")
    engine.execute("INSERT INTO facts SELECT 'b', CAST(2 AS DECIMAL(10, 2)), DATE '2024-05-01'")
    engine.execute("INSERT INTO facts (name, amount, day) SELECT 'c', 3, CAST(:day AS DATE)",
                   {"day": "2024-05-02"})
    frame = engine.query("SELECT * FROM facts ORDER BY name")
    assert frame["amount"].tolist() == [Decimal("1.50"), Decimal("2.00"), Decimal("3.00")]
    assert frame["day"].tolist() == [dt.date(2024, 5, 1), dt.date(2024, 5, 1), dt.date(2024, 5, 2)]
    keys = [o["Key"] for o in aws.client("s3").list_objects_v2(Bucket=raw["BucketName"],
                                                               Prefix="curated/facts/")["Contents"]]
    assert len([k for k in keys if "/day=2024-05-01/" in k]) == 2 and len(keys) == 3
    assert {tuple(p.values) for p in catalog.get_partitions(aws.client("glue"), "gadget_sales", "facts")} == {
        ("2024-05-01",), ("2024-05-02",)}
    with pytest.raises(QueryError, match="mismatched column types"):
        engine.execute("INSERT INTO facts SELECT 'd', 'not money', DATE '2024-05-01'")
    with pytest.raises(QueryError, match="mismatched column count"):
        engine.execute("INSERT INTO facts SELECT 'd', DATE '2024-05-01'")
    with pytest.raises(QueryError, match="only into Parquet"):
        engine.execute(f"INSERT INTO {RAW_TABLE} SELECT * FROM {RAW_TABLE}")  # noqa: S608


def test_drop_table_forgets_the_table_but_keeps_its_data(aws, engine, raw):
    location = curated(raw, "scratch")
    engine.execute(f"CREATE TABLE scratch WITH (external_location = '{location}') AS SELECT 1 AS a")
    engine.execute("DROP TABLE IF EXISTS gadget_sales.scratch")
    assert catalog.get_table(aws.client("glue"), "gadget_sales", "scratch") is None
    kept = aws.client("s3").list_objects_v2(Bucket=raw["BucketName"], Prefix="curated/scratch/")
    assert kept["KeyCount"] == 1
    engine.execute("DROP TABLE IF EXISTS scratch")
    with pytest.raises(QueryError, match="does not exist"):
        engine.execute("DROP TABLE scratch")
    with pytest.raises(QueryError, match="TABLE_NOT_FOUND"):
        engine.query("SELECT * FROM scratch")


def test_create_external_table_and_empty_tables_keep_their_types(aws, engine, raw):
    ddl = ("CREATE EXTERNAL TABLE IF NOT EXISTS gadget_sales.empty_facts "
           "(name string, amount decimal(18, 2)) "
           f"PARTITIONED BY (day date) STORED AS PARQUET LOCATION '{curated(raw, 'empty_facts')}'")
    engine.execute(ddl)
    engine.execute(ddl)  # IF NOT EXISTS: idempotent
    table = catalog.get_table(aws.client("glue"), "gadget_sales", "empty_facts")
    assert [(c.name, c.type) for c in table.all_columns] == [("name", "string"), ("amount", "decimal(18,2)"),
                                                              ("day", "date")]
    frame = engine.query("SELECT * FROM empty_facts")
    assert frame.empty and list(frame.columns) == ["name", "amount", "day"]
    with pytest.raises(QueryError, match="EXTERNAL"):
        engine.execute("CREATE TABLE gadget_sales.managed (a int)")


@pytest.mark.parametrize(("sql", "message"), [
    ("SELEC 1", "syntax error"),
    ("SELECT 1; SELECT 2", "exactly one SQL statement"),
    ("SELECT * FROM gadget_sales.no_such_table", "TABLE_NOT_FOUND"),
    ("SELECT no_such_column FROM gadget_orders_cdc", "query failed"),
    ("CREATE VIEW v AS SELECT 1 AS a", "does not run CREATE statements"),
    ("ALTER TABLE gadget_orders_cdc ADD COLUMNS (x string)", "does not run"),
])
def test_bad_sql_is_one_clear_config_error(engine, raw, sql, message):
    with pytest.raises(QueryError, match=message) as caught:
        engine.query(sql)
    assert isinstance(caught.value, ConfigError) and "\n" not in str(caught.value)


def test_parameters_bind_values_and_refuse_bad_ones(engine):
    assert engine.query("SELECT ? AS a, ? AS b", ["x'y", 2]).iloc[0].tolist() == ["x'y", 2]
    frame = engine.query("SELECT :day AS d, :amount AS m, :day AS again", {"day": dt.date(2024, 5, 1),
                                                                          "amount": Decimal("1.10")})
    assert frame.iloc[0].tolist() == [dt.date(2024, 5, 1), Decimal("1.10"), dt.date(2024, 5, 1)]
    assert bind_parameters("SELECT ':x', \"y:z\" -- :c\n FROM t WHERE a = :x", {"x": 1}) == (
        "SELECT ':x', \"y:z\" -- :c\n FROM t WHERE a = ?", [1])
    with pytest.raises(SqlParameterError, match="unsupported parameter type"):
        engine.query("SELECT ?", [object()])
    with pytest.raises(SqlParameterError, match="either"):
        engine.query("SELECT ?, :a", {"a": 1})
    with pytest.raises(SqlParameterError, match="not a SQL file name"):
        engine.run_sql_file("../secrets")


def test_aws_engine_sends_athena_literals_and_shapes_results_like_the_local_engine(engine, deployed):
    values = (None, True, 7, Decimal("1.10"), 2.5, dt.date(2024, 5, 1), "it's")
    assert [athena_literal(v) for v in values] == [
        "NULL", "true", "7", "DECIMAL '1.10'", "2.5E0", "DATE '2024-05-01'", "'it''s'"]
    calls = []

    class FakeCursor:  # what pyathena's PandasCursor hands back for this result
        description = [("name", "varchar"), ("amount", "decimal"), ("n", "bigint"), ("day", "date"),
                       ("at", "timestamp"), ("ok", "boolean")]

        def execute(self, sql, parameters=None, paramstyle=None):
            calls.append((sql, parameters, paramstyle))

        def as_pandas(self):
            return pd.DataFrame({"name": pd.Series(["a"], dtype="str"), "amount": [Decimal("1.10")],
                                 "n": pd.Series([3], dtype="Int64"), "day": pd.to_datetime(["2024-05-01"]),
                                 "at": pd.to_datetime(["2024-05-01 10:00:00"]), "ok": [True]})

    remote = AwsAthenaEngine(AwsTarget(endpoint_url=None), deployed)
    remote._cursor = FakeCursor  # type: ignore[method-assign]
    remote_frame = remote.query("SELECT * FROM t WHERE day = :day", {"day": dt.date(2024, 5, 1)})
    assert calls == [("SELECT * FROM t WHERE day = ?", ["DATE '2024-05-01'"], "qmark")]
    local_frame = engine.query("SELECT 'a' AS name, CAST(1.10 AS DECIMAL(12, 2)) AS amount, count(*) AS n, "
                               "DATE '2024-05-01' AS day, TIMESTAMP '2024-05-01 10:00:00' AS at, true AS ok")
    local_frame["n"] = pd.Series([3], dtype="Int64")
    pd.testing.assert_frame_equal(remote_frame, local_frame)


def test_query_output_formats_keep_money_exact(engine):
    frame = engine.query("SELECT CAST('199.99' AS DECIMAL(12, 2)) AS price, 'x' AS name, "
                         "CAST(NULL AS VARCHAR) AS n")
    assert render(frame, "json") == '{"price": "199.99", "name": "x", "n": null}\n'
    assert render(frame, "csv") == "price,name,n\n199.99,x,\n"
    assert "199.99" in render(frame, "table")


def test_cli_query_and_crawl_verbs(aws, raw, capsys):
    import argparse

    from gadget_pipeline.athena.cli import register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="verb"))
    args = parser.parse_args(["crawl"])
    assert args.func(args) == 0
    assert "crawler gadget-sales-crawler: SUCCEEDED" in capsys.readouterr().out
    args = parser.parse_args(["query", "SELECT count(*) AS n FROM gadget_orders_cdc", "--format", "csv"])
    assert args.func(args) == 0
    assert capsys.readouterr().out == "n\n3\n"
    args = parser.parse_args(["query", "SELECT FROM WHERE"])
    with pytest.raises(ConfigError, match="syntax error"):
        args.func(args)
