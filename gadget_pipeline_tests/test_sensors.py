"""The raw-file sensor against a real moto server: what it lists, what it requests, what it remembers."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from gadget_pipeline import raw_objects
from gadget_pipeline.athena.current_state import raw_table_name
from gadget_pipeline.aws import AwsTarget
from gadget_pipeline.resources import AwsStackResource
from gadget_pipeline.sensors import LOOKBACK_HOURS, build_sensors

LINE = json.dumps({"event_id": "e1", "order_id": "o1", "sequence_number": "1"}).encode() + b"\n"


def _prefix_template(aws: AwsTarget, outputs: dict[str, str]) -> str:
    return AwsStackResource(endpoint_url=aws.endpoint_url).raw_prefix_template()


def _put(aws: AwsTarget, bucket: str, keys: list[str], body: bytes = LINE) -> None:
    s3 = aws.client("s3")
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda key: s3.put_object(Bucket=bucket, Key=key, Body=body), keys))


def _key(template: str, moment: datetime, n: int) -> str:
    stamp = moment.strftime("%Y-%m-%d-%H-%M-%S")
    return f"{raw_objects.expand_timestamp_prefix(template, moment)}kinesis-gadget-data-s3-1-{stamp}-{n:08d}"


def _tick(aws: AwsTarget, cursor: str | None) -> dg.SensorResult:
    context = dg.build_sensor_context(
        cursor=cursor, resources={"stack": AwsStackResource(endpoint_url=aws.endpoint_url)}
    )
    raw_cdc_files_sensor = build_sensors("local")[0]
    return raw_cdc_files_sensor(context)


def _register_partition(aws: AwsTarget, outputs: dict[str, str], partition: str, columns: list[str]) -> None:
    glue = aws.client("glue")
    database, table = outputs["GlueDatabaseName"], raw_table_name(outputs)
    descriptor = {
        "Columns": [{"Name": c, "Type": "string"} for c in columns],
        "Location": outputs["RawLocation"],
    }
    try:
        glue.create_table(
            DatabaseName=database,
            TableInput={
                "Name": table,
                "StorageDescriptor": descriptor,
                "PartitionKeys": [{"Name": k, "Type": "string"} for k in ("year", "month", "day", "hour")],
            },
        )
    except glue.exceptions.AlreadyExistsException:
        pass
    values = [part.split("=", 1)[1] for part in partition.split("/")]
    glue.create_partition(
        DatabaseName=database,
        TableName=table,
        PartitionInput={
            "Values": values,
            "StorageDescriptor": {**descriptor, "Location": outputs["RawLocation"] + partition + "/"},
        },
    )


def test_ticks_request_each_crawl_and_refresh_once(aws: AwsTarget, deployed: dict[str, str]) -> None:
    template = _prefix_template(aws, deployed)
    now = datetime.now(UTC)
    bucket = deployed["BucketName"]
    _put(aws, bucket, [_key(template, now, n) for n in range(3)])
    _put(aws, bucket, [raw_objects.expand_timestamp_prefix(template, now) + "_SUCCESS"], b"")

    first = _tick(aws, None)
    assert [r.job_name for r in first.run_requests] == ["crawl_raw_cdc_job"]
    assert first.asset_events[0].metadata["new_objects"].value == 3  # the empty marker is not data
    assert first.cursor and json.loads(first.cursor)["last_key_by_prefix"]

    # A retried tick from the same cursor asks for the same run: Dagster dedupes it by run key.
    assert _tick(aws, None).run_requests[0].run_key == first.run_requests[0].run_key

    second = _tick(aws, first.cursor)
    assert second.run_requests == [] and second.asset_events == []
    assert second.cursor == first.cursor

    # After the crawl knows the partition and columns, new objects there only need a refresh ...
    partition = now.strftime("year=%Y/month=%m/day=%d/hour=%H")
    assert raw_objects.partition_of(_key(template, now, 0), raw_objects.static_prefix(template)) == partition
    _register_partition(aws, deployed, partition, ["event_id", "order_id", "sequence_number"])
    _put(aws, bucket, [_key(template, now, n) for n in range(3, 5)])
    third = _tick(aws, second.cursor)
    assert [r.job_name for r in third.run_requests] == ["refresh_current_state_job"]
    assert third.asset_events[0].metadata["new_objects"].value == 2

    # ... unless they bring a column the table lacks.
    _put(
        aws,
        bucket,
        [_key(template, now, 9)],
        json.dumps({"event_id": "e", "gift_wrap": True}).encode() + b"\n",
    )
    fourth = _tick(aws, third.cursor)
    assert [r.job_name for r in fourth.run_requests] == ["crawl_raw_cdc_job"]
    assert "gift_wrap" in fourth.run_requests[0].tags["reason"]


@pytest.mark.slow
def test_tick_cost_does_not_grow_with_history(aws: AwsTarget, deployed: dict[str, str]) -> None:
    template = _prefix_template(aws, deployed)
    bucket = deployed["BucketName"]
    now = datetime.now(UTC)
    history = [_key(template, now - timedelta(days=3, hours=n % 48), n) for n in range(10_000)]
    _put(aws, bucket, history)
    recent = [_key(template, now, n) for n in range(10)]
    _put(aws, bucket, recent)

    stats = raw_objects.ListingStats()
    found, cursor = raw_objects.list_new_objects(
        aws.client("s3"), bucket, template, raw_objects.RawCursor(), now, LOOKBACK_HOURS, stats
    )
    assert sorted(obj.key for obj in found) == sorted(recent)
    assert stats.keys_listed == 10
    assert (
        stats.list_calls
        == len(raw_objects.hour_prefixes(template, now, LOOKBACK_HOURS))
        <= LOOKBACK_HOURS + 1
    )
    assert all(prefix.startswith(raw_objects.static_prefix(template)) for prefix in cursor.last_key_by_prefix)

    result = _tick(aws, None)
    assert result.asset_events[0].metadata["s3_keys_listed"].value == 10


def test_late_object_in_the_previous_hour_is_seen(aws: AwsTarget, deployed: dict[str, str]) -> None:
    template = _prefix_template(aws, deployed)
    bucket = deployed["BucketName"]
    now = datetime.now(UTC)
    _put(aws, bucket, [_key(template, now, 1)])
    _, cursor = raw_objects.list_new_objects(
        aws.client("s3"), bucket, template, raw_objects.RawCursor(), now, 2
    )
    late = _key(template, now - timedelta(hours=1), 2)
    _put(aws, bucket, [late])
    found, _ = raw_objects.list_new_objects(aws.client("s3"), bucket, template, cursor, now, 2)
    assert [obj.key for obj in found] == [late]


@pytest.mark.parametrize(
    "key, size, expected",
    [
        ("raw/x/year=2026/hour=01/stream-1-2026", 10, True),
        ("raw/x/year=2026/hour=01/", 0, False),
        ("raw/x/year=2026/hour=01/_SUCCESS", 5, False),
        ("raw/x/year=2026/hour=01/part.tmp", 5, False),
        ("raw/x/year=2026/hour=01/empty", 0, False),
    ],
)
def test_is_data_object(key: str, size: int, expected: bool) -> None:
    assert raw_objects.is_data_object(key, size) is expected


def test_prefix_expansion_rejects_unknown_tokens() -> None:
    moment = datetime(2026, 3, 4, 5, tzinfo=UTC)
    assert (
        raw_objects.expand_timestamp_prefix("a/y=!{timestamp:yyyy}/h=!{timestamp:HH}/", moment)
        == "a/y=2026/h=05/"
    )
    with pytest.raises(ValueError, match="unsupported"):
        raw_objects.expand_timestamp_prefix("a/!{timestamp:ww}/", moment)
