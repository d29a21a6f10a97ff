"""The crawler: the local one against a real moto server (what a Glue crawl leaves in the catalog), the
AWS one against a stubbed Glue client (start, wait, report), and the type inference they rely on.

The raw-event helpers at the top are shared with test_sql.py and test_athena_engine.py.
"""

from __future__ import annotations

import gzip as gzip_module
import json
import os
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from gadget_pipeline.aws import AwsTarget
from gadget_pipeline.catalog import crawler_for
from gadget_pipeline.catalog.aws_crawler import AwsGlueCrawler
from gadget_pipeline.catalog.crawler import CrawlerError, table_name_for_path
from gadget_pipeline.catalog.glue import Column
from gadget_pipeline.catalog.hive_types import parse_hive_type
from gadget_pipeline.catalog.json_schema import SchemaAccumulator, merge_schemas
from gadget_pipeline.catalog.local_crawler import LocalGlueCrawler

RAW_TABLE = "gadget_orders_cdc"
PRODUCTS = {
    "pixel": ("Pixel 9 Pro", "Google", "phone", "999.00"),
    "buds": ("Galaxy Buds 3", "Samsung", "audio", "179.99"),
    "kindle": ("Kindle Paperwhite", "Amazon", "e-reader", "159.99"),
}

# ---------------------------------------------------------------------------- shared raw-event helpers


def raw_event(
    order_id: str,
    sequence: int | str,
    *,
    event: str = "MODIFY",
    status: str = "PLACED",
    quantity: int = 1,
    product: str = "pixel",
    order_ts: str = "2024-05-01T09:30:00Z",
    currency: str = "USD",
    event_id: str | None = None,
) -> dict[str, Any]:
    """One raw CDC line as the transform Lambda writes it (keys in its order, numbers as decimal text)."""
    name, brand, category, price = PRODUCTS[product]
    total = f"{int(price.replace('.', '')) * quantity / 100:.2f}"
    return {
        "event_id": event_id or f"ev-{order_id}-{sequence}",
        "event_name": event,
        "event_ts": "2024-05-01T10:00:00Z",
        "sequence_number": str(sequence),
        "order_id": order_id,
        "is_deleted": event == "REMOVE",
        "customer_id": f"cust-{order_id}",
        "product_name": name,
        "brand": brand,
        "category": category,
        "quantity": str(quantity),
        "unit_price": price,
        "total_amount": total,
        "currency": currency,
        "status": status,
        "order_ts": order_ts,
        "updated_at": "2024-05-01T10:00:00Z",
        "shipping": {"city": "Berlin", "country": "DE"},
    }


def hour_prefix(hour: str) -> str:
    """'2024-05-01T10' -> the Firehose folder raw/gadget_orders_cdc/year=2024/month=05/day=01/hour=10/."""
    moment = datetime.strptime(hour, "%Y-%m-%dT%H")
    return f"raw/{RAW_TABLE}/year={moment:%Y}/month={moment:%m}/day={moment:%d}/hour={moment:%H}/"


def put_raw_object(s3: Any, bucket: str, hour: str, name: str, events: list[dict[str, Any]], *,
                   compress: bool = False) -> str:
    body = "".join(json.dumps(event, separators=(",", ":")) + "\n" for event in events).encode()
    key = hour_prefix(hour) + name + (".gz" if compress else "")
    s3.put_object(Bucket=bucket, Key=key, Body=gzip_module.compress(body) if compress else body)
    return key


def partitions_of(aws: AwsTarget, database: str, table: str = RAW_TABLE) -> set[tuple[str, ...]]:
    paginator = aws.client("glue").get_paginator("get_partitions")
    pages = paginator.paginate(DatabaseName=database, TableName=table)
    return {tuple(p["Values"]) for page in pages for p in page["Partitions"]}


# ---------------------------------------------------------------------------- the local crawler


def test_crawl_creates_the_raw_table_with_glue_schema_and_partitions(aws, deployed):
    s3, bucket, database = aws.client("s3"), deployed["BucketName"], deployed["GlueDatabaseName"]
    put_raw_object(s3, bucket, "2024-05-01T10", "part-1", [raw_event("o1", 100, event="INSERT")])
    put_raw_object(s3, bucket, "2024-05-01T11", "part-2", [raw_event("o1", 101), raw_event("o2", 102)],
                   compress=True)

    report = crawler_for(aws).crawl()

    assert report.succeeded and report.tables_created == (RAW_TABLE,) and report.partitions_added == 2
    assert report.objects_seen == 2 and report.objects_skipped == {} and report.records_sampled == 3
    table = aws.client("glue").get_table(DatabaseName=database, Name=RAW_TABLE)["Table"]
    columns = {c["Name"]: c["Type"] for c in table["StorageDescriptor"]["Columns"]}
    assert list(columns)[:6] == ["event_id", "event_name", "event_ts", "sequence_number", "order_id",
                                 "is_deleted"]
    assert columns["is_deleted"] == "boolean"
    assert columns["unit_price"] == columns["total_amount"] == columns["quantity"] == "string"  # decimal text
    assert columns["shipping"] == "struct<city:string,country:string>"
    assert [k["Name"] for k in table["PartitionKeys"]] == ["year", "month", "day", "hour"]
    assert {k["Type"] for k in table["PartitionKeys"]} == {"string"}
    descriptor = table["StorageDescriptor"]
    assert descriptor["Location"] == deployed["RawLocation"]
    assert descriptor["InputFormat"] == "org.apache.hadoop.mapred.TextInputFormat"
    assert descriptor["OutputFormat"] == "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat"
    assert descriptor["SerdeInfo"]["SerializationLibrary"] == "org.openx.data.jsonserde.JsonSerDe"
    assert table["Parameters"]["classification"] == "json"
    assert table["Parameters"]["typeOfData"] == "file"
    assert table["Parameters"]["objectCount"] == "2"
    assert table["TableType"] == "EXTERNAL_TABLE"
    assert partitions_of(aws, database) == {("2024", "05", "01", "10"), ("2024", "05", "01", "11")}
    crawled = report.tables[0]
    assert crawled.schema["shipping"] == "struct<city:string,country:string>"
    assert crawled.schema["hour"] == "string"


def test_second_crawl_adds_only_the_new_partitions_and_new_columns(aws, deployed):
    s3, bucket, database = aws.client("s3"), deployed["BucketName"], deployed["GlueDatabaseName"]
    put_raw_object(s3, bucket, "2024-05-01T10", "part-1", [raw_event("o1", 100)])
    crawler = crawler_for(aws)
    crawler.crawl()
    glue = aws.client("glue")

    unchanged = crawler.crawl()
    assert unchanged.tables[0].action == "unchanged" and unchanged.partitions_added == 0

    put_raw_object(s3, bucket, "2024-05-01T10", "part-late", [raw_event("o2", 101)])  # existing partition
    put_raw_object(s3, bucket, "2024-05-01T12", "part-3", [dict(raw_event("o3", 102), coupon="SPRING")])
    report = crawler.crawl()

    table = report.tables[0]
    assert table.action == "updated"
    assert table.partitions_added == (("2024", "05", "01", "12"),)
    assert table.schema["coupon"] == "string" and list(table.schema)[-5] == "coupon"  # appended, before keys
    assert table.partitions_updated == 1  # InheritFromTable: the old partition takes the new column
    assert partitions_of(aws, database) == {("2024", "05", "01", "10"), ("2024", "05", "01", "12")}
    old = glue.get_partition(DatabaseName=database, TableName=RAW_TABLE,
                             PartitionValues=["2024", "05", "01", "10"])["Partition"]
    assert old["StorageDescriptor"]["Location"] == f"s3://{bucket}/{hour_prefix('2024-05-01T10')}"
    assert "coupon" in {c["Name"] for c in old["StorageDescriptor"]["Columns"]}


def test_odd_objects_are_skipped_and_counted_never_crash(aws, deployed):
    s3, bucket, database = aws.client("s3"), deployed["BucketName"], deployed["GlueDatabaseName"]
    put_raw_object(s3, bucket, "2024-05-01T10", "good", [raw_event("o1", 100)])
    odd = {
        hour_prefix("2024-05-01T11"): b"",  # zero-byte "folder" key
        hour_prefix("2024-05-01T11") + "_SUCCESS": b"",
        hour_prefix("2024-05-01T11") + "part-0001.tmp": b'{"half": ',
        hour_prefix("2024-05-01T11") + "empty.json": b"",
        hour_prefix("2024-05-01T12") + "junk.bin": os.urandom(512) + b"\x00\xff",
        hour_prefix("2024-05-01T13") + "fake.gz": b"\x1f\x8b not really gzip",
        hour_prefix("2024-05-01T14") + "array.json": b"[1, 2, 3]\n",
        f"raw/{RAW_TABLE}/stray-at-root.json": b'{"a": "b"}\n',
    }
    for key, body in odd.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)

    report = crawler_for(aws).crawl()

    assert report.succeeded and report.tables_created == (RAW_TABLE,)
    assert report.objects_seen == 9
    # The template's crawler Exclusions ("**/_*", "**.tmp") catch the marker and the temporary file first.
    assert report.objects_skipped == {"folder_marker": 1, "excluded": 2, "empty": 1,
                                      "not_json": 2, "bad_gzip": 1, "unexpected_layout": 1}
    # partitions holding nothing readable are not registered; the table's schema comes from good data only
    assert partitions_of(aws, database) == {("2024", "05", "01", "10")}
    assert "half" not in report.tables[0].schema and "a" not in report.tables[0].schema


def test_sampling_is_bounded_by_new_partitions_not_history(aws, deployed):
    s3, bucket = aws.client("s3"), deployed["BucketName"]
    for i in range(12):
        put_raw_object(s3, bucket, "2024-05-01T10", f"part-{i:03d}", [raw_event(f"o{i}", 100 + i)])
    crawler = LocalGlueCrawler(aws, deployed["CrawlerName"], samples_per_new_partition=2, recent_samples=3)
    first = crawler.crawl()
    assert first.objects_sampled == 2 + 3  # 2 of the new partition + the 3 most recent others
    for i in range(3):
        put_raw_object(s3, bucket, "2024-05-01T11", f"part-{i:03d}", [raw_event(f"n{i}", 200 + i)])
    second = crawler.crawl()
    assert second.objects_seen == 15 and second.objects_sampled == 2 + 3
    assert second.partitions_added == 1


def test_crawler_honours_exclusions_and_reports_missing_partitions(aws, deployed):
    s3, bucket, database = aws.client("s3"), deployed["BucketName"], deployed["GlueDatabaseName"]
    glue = aws.client("glue")
    # moto has no UpdateCrawler: re-create the deployed crawler with an exclusion added
    deployed_crawler = glue.get_crawler(Name=deployed["CrawlerName"])["Crawler"]
    glue.delete_crawler(Name=deployed["CrawlerName"])
    glue.create_crawler(
        Name=deployed["CrawlerName"], Role=deployed_crawler["Role"], DatabaseName=database,
        Classifiers=deployed_crawler["Classifiers"],
        SchemaChangePolicy=deployed_crawler["SchemaChangePolicy"],
        Targets={"S3Targets": [{"Path": deployed["RawLocation"], "Exclusions": ["**.csv"]}]},
    )
    put_raw_object(s3, bucket, "2024-05-01T10", "part-1", [raw_event("o1", 100)])
    s3.put_object(Bucket=bucket, Key=hour_prefix("2024-05-01T10") + "notes.csv", Body=b"a,b\n")
    crawler = crawler_for(aws)
    assert crawler.crawl().objects_skipped == {"excluded": 1}

    s3.delete_object(Bucket=bucket, Key=hour_prefix("2024-05-01T10") + "part-1")
    put_raw_object(s3, bucket, "2024-05-01T11", "part-2", [raw_event("o2", 101)])
    report = crawler.crawl()
    assert report.tables[0].partitions_missing == 1  # DeleteBehavior LOG: reported, kept
    assert "DeleteBehavior LOG" in report.message
    assert len(partitions_of(aws, database)) == 2


def test_missing_crawler_is_a_clear_error(aws, deployed):
    with pytest.raises(CrawlerError, match="not deployed"):
        LocalGlueCrawler(aws, "no-such-crawler").crawl()


# ---------------------------------------------------------------------------- the AWS crawler (stubbed)


def _glue_table(partition_keys: bool = True) -> dict[str, Any]:
    return {
        "Name": RAW_TABLE, "DatabaseName": "gadget_sales", "UpdateTime": datetime(2024, 5, 1, tzinfo=UTC),
        "StorageDescriptor": {"Columns": [{"Name": "order_id", "Type": "string"}],
                              "Location": "s3://bucket/raw/gadget_orders_cdc/",
                              "SerdeInfo": {"SerializationLibrary": "org.openx.data.jsonserde.JsonSerDe"}},
        "PartitionKeys": [{"Name": "hour", "Type": "string"}] if partition_keys else [],
    }


def _crawler(state: str, last: dict[str, Any] | None = None) -> dict[str, Any]:
    crawler = {"Name": "gadget-sales-crawler", "DatabaseName": "gadget_sales", "State": state,
               "Targets": {"S3Targets": [{"Path": "s3://bucket/raw/gadget_orders_cdc/"}]}}
    if last:
        crawler["LastCrawl"] = last
    return crawler


def _snapshot_responses(stub: Stubber, partitions: list[str]) -> None:
    stub.add_response("get_tables", {"TableList": [_glue_table()]})
    stub.add_response("get_table", {"Table": _glue_table()})
    stub.add_response("get_partitions", {"Partitions": [{"Values": [v]} for v in partitions]})


def test_aws_crawler_waits_for_a_running_crawl_then_reports_the_catalog_diff():
    glue = boto3.client("glue", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    target = AwsTarget(endpoint_url=None, region="us-east-1", _clients={"glue": glue})
    sleeps: list[float] = []
    crawler = AwsGlueCrawler(target, "gadget-sales-crawler", poll_seconds=7, sleep=sleeps.append)
    with Stubber(glue) as stub:
        stub.add_response("get_crawler", {"Crawler": _crawler("READY")})
        _snapshot_responses(stub, ["10"])
        stub.add_client_error("start_crawler", service_error_code="CrawlerRunningException")
        stub.add_response("get_crawler", {"Crawler": _crawler("RUNNING")})
        stub.add_response("get_crawler", {"Crawler": _crawler("READY")})
        stub.add_response("start_crawler", {})
        stub.add_response("get_crawler", {"Crawler": _crawler("RUNNING")})
        stub.add_response("get_crawler", {"Crawler": _crawler("STOPPING")})
        stub.add_response("get_crawler", {"Crawler": _crawler("READY", {"Status": "SUCCEEDED"})})
        _snapshot_responses(stub, ["10", "11"])
        stub.add_response("get_crawler_metrics", {"CrawlerMetricsList": [
            {"CrawlerName": "gadget-sales-crawler", "TablesCreated": 0, "TablesUpdated": 1,
             "TablesDeleted": 0}]})
        report = crawler.crawl()
        stub.assert_no_pending_responses()
    assert report.status == "SUCCEEDED" and report.succeeded
    assert report.tables[0].partitions_added == (("11",),)
    assert report.tables[0].action == "updated"
    assert report.objects_seen is None and "tables created 0, updated 1" in report.message
    assert sleeps == [7, 7, 7]


def test_aws_crawler_times_out_with_a_clear_error():
    glue = boto3.client("glue", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    target = AwsTarget(endpoint_url=None, region="us-east-1", _clients={"glue": glue})
    ticks = iter(range(0, 10_000, 100))
    crawler = AwsGlueCrawler(target, "gadget-sales-crawler", timeout_seconds=250, sleep=lambda _s: None,
                             clock=lambda: next(ticks))
    with Stubber(glue) as stub:
        stub.add_response("get_crawler", {"Crawler": _crawler("READY")})
        _snapshot_responses(stub, [])
        stub.add_response("start_crawler", {})
        for _ in range(3):
            stub.add_response("get_crawler", {"Crawler": _crawler("RUNNING")})
        with pytest.raises(CrawlerError, match="still RUNNING"):
            crawler.crawl()


def test_crawler_for_picks_the_implementation_by_world():
    outputs = {"CrawlerName": "gadget-sales-crawler"}
    assert isinstance(crawler_for(AwsTarget.local("http://127.0.0.1:1"), outputs), LocalGlueCrawler)
    assert isinstance(crawler_for(AwsTarget(endpoint_url=None), outputs), AwsGlueCrawler)


# ---------------------------------------------------------------------------- inference and naming


def test_json_inference_follows_glue_json_classifier():
    schema = SchemaAccumulator()
    schema.add({"Order_ID": "o1", "n": 1, "big": 2**40, "x": 1.5, "ok": True, "tags": ["a"], "m": {"k": 1},
                "nothing": None})
    schema.add({"order_id": "o2", "n": 2.5, "big": 3, "m": {"j": "v", "k": 2**40}, "tags": []})
    assert {c.name: c.type for c in schema.columns()} == {
        "order_id": "string", "n": "double", "big": "bigint", "x": "double", "ok": "boolean",
        "tags": "array<string>", "m": "struct<k:bigint,j:string>", "nothing": "string",
    }
    merged = merge_schemas([Column("a", "int"), Column("b", "string")],
                           [Column("c", "boolean"), Column("a", "bigint")])
    assert merged == [Column("a", "bigint"), Column("b", "string"), Column("c", "boolean")]


def test_hive_types_round_trip_and_glue_table_names():
    for text in ("decimal(12,2)", "array<struct<a:int,b:array<string>>>", "map<string,bigint>",
                 "struct<x-y:int>"):
        assert parse_hive_type(text).render() == text
    assert table_name_for_path("s3://b/raw/gadget_orders_cdc/") == "gadget_orders_cdc"
    assert table_name_for_path("s3://b/raw/Gadget-Orders", "x_") == "x_gadget_orders"
