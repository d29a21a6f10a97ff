"""Generator -> DynamoDB -> local pipe -> Kinesis -> local Firehose (real handler) -> S3, on a moto server."""

from __future__ import annotations

import base64
import gzip
import json
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from boto3.dynamodb.types import TypeDeserializer

from gadget_pipeline.deploy.local import deploy_local
from gadget_pipeline.ingest.firehose_runner import FirehoseRunner, LocalFunction, load_firehose_settings
from gadget_pipeline.ingest.generator import final_state, generate, plan_operations
from gadget_pipeline.ingest.pipe_runner import PipeRunner
from gadget_pipeline.ingest.stream import LocalStream, drain_stream

START = datetime(2025, 6, 1, tzinfo=UTC)
ENVELOPE = ("event_id", "event_name", "event_ts", "sequence_number", "is_deleted")


# --------------------------------------------------------------------------- helpers


def stream_events(aws, outputs) -> list[dict]:
    """Every record on the table's DynamoDB stream, read directly (the ground truth)."""
    streams = aws.client("dynamodbstreams")
    arn = outputs["TableStreamArn"]
    events = []
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"],
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while iterator:
            page = streams.get_records(ShardIterator=iterator, Limit=1000)
            events.extend(page["Records"])
            if not page["Records"]:
                break
            iterator = page["NextShardIterator"]
    return events


def objects(aws, outputs, prefix: str) -> dict[str, bytes]:
    s3 = aws.client("s3")
    found = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=outputs["BucketName"], Prefix=prefix):
        for entry in page.get("Contents", []):
            body = s3.get_object(Bucket=outputs["BucketName"], Key=entry["Key"])["Body"].read()
            found[entry["Key"]] = gzip.decompress(body) if entry["Key"].endswith(".gz") else body
    return found


def raw_lines(aws, outputs) -> list[dict]:
    lines = []
    for body in objects(aws, outputs, "raw/").values():
        assert body.endswith(b"\n")
        lines.extend(json.loads(line) for line in body.splitlines())
    return lines


def error_records(aws, outputs) -> list[dict]:
    bodies = objects(aws, outputs, "errors/").values()
    return [json.loads(line) for body in bodies for line in body.splitlines()]


def latest_per_order(lines: list[dict]) -> dict[str, dict]:
    latest: dict[str, dict] = {}
    for line in lines:
        current = latest.get(line["order_id"])
        if current is None or int(line["sequence_number"]) > int(current["sequence_number"]):
            latest[line["order_id"]] = line
    return latest


def comparable(value: Any) -> Any:
    """DynamoDB numbers come back as Decimal, raw lines carry decimal text: compare both as Decimal."""
    if isinstance(value, dict):
        return {key: comparable(inner) for key, inner in value.items()}
    if isinstance(value, str) and value.replace(".", "", 1).isdigit():
        return Decimal(value)
    return value


def table_items(aws, outputs) -> dict[str, dict]:
    deserialize = TypeDeserializer().deserialize
    items = {}
    for page in aws.client("dynamodb").get_paginator("scan").paginate(TableName=outputs["TableName"]):
        for item in page["Items"]:
            items[item["order_id"]["S"]] = {name: deserialize(value) for name, value in item.items()}
    return items


def without_envelope(line: dict) -> dict:
    return {key: value for key, value in line.items() if key not in ENVELOPE}


# --------------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_generated_changes_arrive_in_s3_exactly_as_the_table_holds_them(aws, deployed) -> None:
    summary = generate(aws, deployed, orders=900, seed=2024, start=START, show_progress=False)
    assert summary.operations >= 2000
    assert all(summary.counts[kind] for kind in ("put", "update", "delete"))

    snapshot = drain_stream(aws, deployed, progress=None, timeout=120)

    events = stream_events(aws, deployed)
    assert len(events) == summary.operations == snapshot.source_read
    lines = raw_lines(aws, deployed)
    assert {line["event_id"] for line in lines} == {event["eventID"] for event in events}
    assert len(lines) == len(events), "no duplicates without a crash"
    assert error_records(aws, deployed) == []

    latest = latest_per_order(lines)
    items = table_items(aws, deployed)
    live = {order_id: line for order_id, line in latest.items() if not line["is_deleted"]}
    assert live.keys() == items.keys()
    for order_id, item in items.items():
        assert comparable(without_envelope(live[order_id])) == comparable(item), order_id
    tombstones = {order_id for order_id, line in latest.items() if line["is_deleted"]}
    assert tombstones and not tombstones & items.keys()
    assert all(latest[order_id]["event_name"] == "REMOVE" for order_id in tombstones)

    planned = final_state(plan_operations(900, seed=2024, start=START))
    assert {order_id for order_id, order in planned.items() if order is None} == tombstones
    for order_id, order in planned.items():
        if order is not None:
            line = latest[order_id]
            assert Decimal(line["unit_price"]) == order["unit_price"]
            assert Decimal(line["total_amount"]) == order["total_amount"]
            assert line["unit_price"] == str(order["unit_price"]), "exact decimal text, never a float"


@pytest.mark.slow
def test_a_corrupt_kinesis_record_lands_in_errors_with_its_bytes_intact(aws, deployed) -> None:
    corrupt = b"\xff\xfe not json {\x00" + bytes(range(256))
    generate(aws, deployed, orders=40, seed=1, start=START, show_progress=False)
    stream = LocalStream(aws, deployed)
    while stream.pipe.poll(force=True):
        pass
    kinesis = aws.client("kinesis")
    kinesis.put_record(StreamName=deployed["KinesisStreamName"], Data=corrupt, PartitionKey="junk")
    generate(aws, deployed, orders=40, seed=2, start=START, show_progress=False)
    stream.run(drain=True, timeout=60)

    errors = error_records(aws, deployed)
    assert len(errors) == 1
    error = errors[0]
    assert base64.b64decode(error["rawData"]) == corrupt
    assert error["errorCode"] == "Lambda.ProcessingFailed"
    assert error["lambdaArn"].endswith(":function:" + deployed["TransformFunctionName"])
    assert error["attemptsMade"] >= 1 and error["attemptEndingTimestamp"] >= error["arrivalTimestamp"] > 0
    (key,) = objects(aws, deployed, "errors/")
    assert key.startswith("errors/processing-failed/year=")
    assert key.split("/")[-1].startswith(f"{deployed['DeliveryStreamName']}-1-")
    events = stream_events(aws, deployed)
    assert {line["event_id"] for line in raw_lines(aws, deployed)} == {event["eventID"] for event in events}


class CrashOnce(Exception):
    """Stands in for the process dying at an inconvenient moment."""


@pytest.mark.slow
def test_a_crash_mid_stream_loses_nothing_and_duplicates_keep_their_event_id(aws, monkeypatch) -> None:
    # A zero buffer interval and small reads make every poll round flush a few records: many crash points.
    outputs = deploy_local(aws, parameters={"BufferingIntervalSeconds": "0"}, progress=lambda _: None).outputs
    monkeypatch.setattr("gadget_pipeline.ingest.pipe_runner.STREAM_READ_LIMIT", 100)
    monkeypatch.setattr("gadget_pipeline.ingest.firehose_runner.KINESIS_READ_LIMIT", 20)
    summary = generate(aws, outputs, orders=250, seed=77, start=START, show_progress=False)

    # 1. The pipe dies after two Kinesis batches (its checkpoint covers only what Kinesis accepted).
    first = LocalStream(aws, outputs)
    real_put_records = first.pipe.kinesis.put_records
    calls = Counter()

    def put_records_then_die(**kwargs: Any) -> Any:
        calls["put"] += 1
        if calls["put"] > 2:
            raise CrashOnce("pipe killed")
        return real_put_records(**kwargs)

    dying_kinesis = type("DyingKinesis", (), {"put_records": staticmethod(put_records_then_die)})
    monkeypatch.setattr(first.pipe, "kinesis", dying_kinesis)
    with pytest.raises(CrashOnce):
        first.run(drain=True, timeout=60)

    # 2. Firehose dies between writing an object and saving its checkpoint: that buffer comes again.
    second = LocalStream(aws, outputs)
    real_commit = second.firehose.checkpoints.commit
    flushes = Counter()

    def commit_then_die(positions: dict, finished: Any = frozenset()) -> None:
        flushes["commit"] += 1
        if flushes["commit"] == 3:
            raise CrashOnce("firehose killed after its S3 write")
        real_commit(positions, finished)

    monkeypatch.setattr(second.firehose.checkpoints, "commit", commit_then_die)
    with pytest.raises(CrashOnce):
        second.run(drain=True, timeout=60)

    # 3. Firehose's S3 write itself fails once: nothing written, nothing checkpointed.
    third = LocalStream(aws, outputs)
    real_put_object = third.firehose.put_object
    writes = Counter()

    def put_object_fails_once(key: str, body: bytes) -> None:
        writes["put"] += 1
        if writes["put"] == 2:
            raise CrashOnce("S3 unavailable")
        real_put_object(key, body)

    monkeypatch.setattr(third.firehose, "put_object", put_object_fails_once)
    with pytest.raises(CrashOnce):
        third.run(drain=True, timeout=60)

    # 4. A clean restart resumes from the checkpoints and finishes the job.
    LocalStream(aws, outputs).run(drain=True, timeout=60)

    events = stream_events(aws, outputs)
    assert len(events) == summary.operations
    lines = raw_lines(aws, outputs)
    by_event: dict[str, list[dict]] = {}
    for line in lines:
        by_event.setdefault(line["event_id"], []).append(line)
    assert by_event.keys() == {event["eventID"] for event in events}, "nothing lost"
    duplicated = {event_id: copies for event_id, copies in by_event.items() if len(copies) > 1}
    assert duplicated, "the crash after the S3 write re-delivered a buffer"
    assert all(all(copy == copies[0] for copy in copies) for copies in duplicated.values())
    # Duplicates do not change the current state: the latest event per order still matches the table.
    items = table_items(aws, outputs)
    latest = {k: v for k, v in latest_per_order(lines).items() if not v["is_deleted"]}
    assert {k: comparable(without_envelope(v)) for k, v in latest.items()} == {
        k: comparable(v) for k, v in items.items()
    }


# --------------------------------------------------------------------------- runner details


def test_the_pipe_writes_stream_records_as_pipes_delivers_them(aws, deployed) -> None:
    generate(aws, deployed, orders=3, seed=5, start=START, show_progress=False)
    pipe = PipeRunner.for_pipe(aws, deployed["PipeName"])
    assert pipe.settings.partition_key.expression == "$.dynamodb.Keys.order_id.S"
    assert pipe.poll(force=True) >= 3
    kinesis = aws.client("kinesis")
    records = []
    for shard in kinesis.list_shards(StreamName=deployed["KinesisStreamName"])["Shards"]:
        iterator = kinesis.get_shard_iterator(StreamName=deployed["KinesisStreamName"],
                                              ShardId=shard["ShardId"],
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        records.extend(kinesis.get_records(ShardIterator=iterator)["Records"])
    assert len(records) == pipe.stats.delivered
    for record in records:
        event = json.loads(record["Data"])
        assert record["PartitionKey"] == event["dynamodb"]["Keys"]["order_id"]["S"]
        assert event["eventSourceARN"] == deployed["TableStreamArn"]
        assert isinstance(event["dynamodb"]["ApproximateCreationDateTime"], int)
        assert event["eventName"] in {"INSERT", "MODIFY", "REMOVE"}
    # The checkpoint holds: a new runner finds nothing new to deliver.
    assert PipeRunner.for_pipe(aws, deployed["PipeName"]).poll(force=True) == 0


@pytest.mark.parametrize(
    ("handler", "code", "attempts"),
    [
        (lambda event, context: {"records": [{"recordId": r["recordId"], "result": "Maybe", "data": r["data"]}
                                             for r in event["records"]]},
         "Lambda.JsonProcessingException", 4),
        (lambda event, context: {"records": [{"recordId": r["recordId"], "result": "Ok", "data": r["data"]}
                                             for r in event["records"][1:]]}, "Lambda.MissingRecordId", 4),
        (lambda event, context: 1 / 0, "Lambda.FunctionError", 4),
    ],
)
def test_a_contract_breaking_lambda_fails_the_whole_batch(aws, deployed, handler, code, attempts) -> None:
    settings = load_firehose_settings(aws, deployed["DeliveryStreamName"])
    assert settings.lambda_retries == attempts - 1
    function = LocalFunction(settings.lambda_arn or "", "broken", handler, 128, 3.0)
    runner = FirehoseRunner(aws, settings, function=function)
    payloads = [f"record-{n}".encode() for n in range(5)]
    for payload in payloads:
        aws.client("kinesis").put_record(StreamName=deployed["KinesisStreamName"], Data=payload,
                                         PartitionKey="p")
    assert runner.read() == 5
    runner.flush()
    errors = error_records(aws, deployed)
    assert sorted(base64.b64decode(error["rawData"]) for error in errors) == payloads
    assert {(error["errorCode"], error["attemptsMade"]) for error in errors} == {(code, attempts)}
    assert objects(aws, deployed, "raw/") == {}


def test_gzip_destinations_write_gz_objects(aws) -> None:
    outputs = deploy_local(aws, parameters={"CompressionFormat": "GZIP"}, progress=lambda _: None).outputs
    generate(aws, outputs, orders=5, seed=8, start=START, show_progress=False)
    drain_stream(aws, outputs, progress=None, timeout=60)
    keys = list(objects(aws, outputs, "raw/"))
    assert keys and all(key.endswith(".gz") for key in keys)
    assert len(raw_lines(aws, outputs)) == len(stream_events(aws, outputs))
