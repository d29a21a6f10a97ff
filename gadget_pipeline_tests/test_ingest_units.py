"""Pure parts of the local runtimes: partition-key paths, record shaping, Firehose naming and contract."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

from gadget_pipeline import config
from gadget_pipeline.ingest.checkpoint import CheckpointStore
from gadget_pipeline.ingest.firehose_runner import (
    FirehoseError,
    InvalidTransformOutput,
    expand_prefix,
    format_timestamp,
    object_key,
    validate_transform_response,
)
from gadget_pipeline.ingest.pipe_runner import (
    PipeError,
    compile_partition_key,
    encode_record,
    epoch_seconds,
    put_records_chunks,
    shape_record,
)
from gadget_pipeline.ingest.shards import readable_shards, sequence_key
from gadget_pipeline.ingest.stream import LocalStream, exclusive_lock

RAW_PREFIX = ("raw/gadget_orders_cdc/year=!{timestamp:yyyy}/month=!{timestamp:MM}/day=!{timestamp:dd}/"
              "hour=!{timestamp:HH}/")
ERROR_PREFIX = ("errors/!{firehose:error-output-type}/year=!{timestamp:yyyy}/month=!{timestamp:MM}/"
                "day=!{timestamp:dd}/")
ARRIVAL = datetime(2025, 3, 7, 5, 4, 3, 987000, tzinfo=UTC)
STREAM_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/Gadget_Orders/stream/2025-01-01T00:00:00.000"


def stream_record(**dynamodb_overrides: object) -> dict:
    dynamodb = {
        "ApproximateCreationDateTime": datetime(2025, 3, 7, 5, 4, 3, 996000, tzinfo=UTC),
        "Keys": {"order_id": {"S": "ord-1"}},
        "NewImage": {"order_id": {"S": "ord-1"}, "unit_price": {"N": "19.90"}},
        "SequenceNumber": "1100000000017454423009",
        "SizeBytes": 120,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
        **dynamodb_overrides,
    }
    return {"eventID": "e1", "eventName": "INSERT", "eventVersion": "1.0", "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1", "dynamodb": dynamodb}


# --------------------------------------------------------------------------- partition key paths


def test_partition_key_path_selects_the_order_id() -> None:
    path = compile_partition_key("$.dynamodb.Keys.order_id.S")
    assert path.evaluate(shape_record(stream_record(), STREAM_ARN)) == "ord-1"


def test_static_partition_key_is_used_verbatim() -> None:
    assert compile_partition_key("orders").evaluate({}) == "orders"


@pytest.mark.parametrize("expression", ["$", "$.", "$..dynamodb", "$.dynamodb.Keys[0]", "$.dynamodb.*",
                                        "$['dynamodb']", "$.dynamodb..Keys", "$.a b", "$dynamodb", ""])
def test_unsupported_partition_key_paths_fail_clearly(expression: str) -> None:
    with pytest.raises(PipeError, match="partition key|PartitionKey"):
        compile_partition_key(expression)


def test_partition_key_path_must_select_a_string_that_exists() -> None:
    record = shape_record(stream_record(), STREAM_ARN)
    with pytest.raises(PipeError, match=r"\$\.dynamodb\.Keys\.customer_id missing"):
        compile_partition_key("$.dynamodb.Keys.customer_id.S").evaluate(record)
    with pytest.raises(PipeError, match="non-empty string"):
        compile_partition_key("$.dynamodb.Keys.order_id").evaluate(record)
    with pytest.raises(PipeError, match="non-empty string"):
        compile_partition_key("$.dynamodb.SizeBytes").evaluate(record)


# --------------------------------------------------------------------------- record shaping


def test_creation_time_becomes_whole_epoch_seconds_rounded_down() -> None:
    assert epoch_seconds(datetime(2025, 3, 7, 5, 4, 3, 996000, tzinfo=UTC)) == 1741323843
    assert epoch_seconds(datetime(2025, 3, 7, 6, 4, 3, 1, tzinfo=timezone(timedelta(hours=1)))) == 1741323843
    assert epoch_seconds(1741323843.999) == 1741323843
    assert epoch_seconds(1741323843) == 1741323843
    for bad in (True, "1741323843", float("nan"), datetime(2025, 1, 1)):
        with pytest.raises(ValueError):
            epoch_seconds(bad)


def test_shaped_record_is_what_pipes_delivers() -> None:
    original = stream_record()
    shaped = shape_record(original, STREAM_ARN)
    assert shaped["eventSourceARN"] == STREAM_ARN
    assert shaped["dynamodb"]["ApproximateCreationDateTime"] == 1741323843
    assert shaped["dynamodb"]["NewImage"] == original["dynamodb"]["NewImage"]
    assert isinstance(original["dynamodb"]["ApproximateCreationDateTime"], datetime), "input left untouched"
    assert list(shaped)[:6] == ["eventID", "eventName", "eventVersion", "eventSource", "awsRegion",
                                "dynamodb"]


def test_binary_attributes_are_base64_on_the_wire() -> None:
    record = stream_record(NewImage={"order_id": {"S": "ord-1"}, "blob": {"B": b"\x00\xff"},
                                     "blobs": {"BS": [b"\x01"]}})
    decoded = json.loads(encode_record(shape_record(record, STREAM_ARN)))
    assert decoded["dynamodb"]["NewImage"]["blob"] == {"B": "AP8="}
    assert decoded["dynamodb"]["NewImage"]["blobs"] == {"BS": ["AQ=="]}


def test_put_records_requests_stay_within_kinesis_limits() -> None:
    small = [{"Data": b"x" * 10, "PartitionKey": "k"} for _ in range(1201)]
    assert [len(chunk) for chunk in put_records_chunks(small)] == [500, 500, 201]
    large = [{"Data": b"x" * (1024 * 1024 - 10), "PartitionKey": "key"} for _ in range(11)]
    chunks = put_records_chunks(large)
    assert [len(chunk) for chunk in chunks] == [5, 5, 1]
    sizes = [sum(len(entry["Data"]) + len(entry["PartitionKey"]) for entry in chunk) for chunk in chunks]
    assert max(sizes) <= 5 * 1024 * 1024
    assert put_records_chunks([]) == []


# --------------------------------------------------------------------------- shards and checkpoints


def test_sequence_numbers_compare_as_numbers() -> None:
    assert sequence_key("10") > sequence_key("9")
    assert max(["9", "10", "100000000000000000000001"], key=sequence_key) == "100000000000000000000001"
    with pytest.raises(ValueError):
        sequence_key("12a")


def test_child_shards_wait_for_their_parents() -> None:
    shards = [{"ShardId": "a"}, {"ShardId": "b", "ParentShardId": "a"},
              {"ShardId": "c", "ParentShardId": "gone"}, {"ShardId": "d", "ParentShardId": "a",
                                                          "AdjacentParentShardId": "c"}]
    assert readable_shards(shards, lambda shard: False) == ["a", "c"]
    assert readable_shards(shards, lambda shard: shard == "a") == ["b", "c"]
    assert readable_shards(shards, lambda shard: shard in {"a", "c"}) == ["b", "d"]


def test_checkpoints_persist_per_scope(tmp_path) -> None:
    path = tmp_path / "state" / "cp.json"
    store = CheckpointStore(path, "arn:stream/1")
    store.commit({"shard-0": "41"})
    store.commit({"shard-0": "42", "shard-1": "7"}, finished={"shard-1"})
    reloaded = CheckpointStore(path, "arn:stream/1")
    assert reloaded.sequence_number("shard-0") == "42"
    assert reloaded.is_finished("shard-1") and not reloaded.is_finished("shard-0")
    other = CheckpointStore(path, "arn:stream/2")  # a redeployed source starts fresh
    assert other.sequence_number("shard-0") is None
    other.commit({"shard-0": "1"})
    assert CheckpointStore(path, "arn:stream/1").sequence_number("shard-0") == "42"
    assert [p.name for p in path.parent.iterdir()] == ["cp.json"], "no temporary files left behind"


def test_corrupt_checkpoint_file_is_reported(tmp_path) -> None:
    path = tmp_path / "cp.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match="corrupt"):
        CheckpointStore(path, "scope")


def test_only_one_stream_loop_per_state_folder(tmp_path) -> None:
    with exclusive_lock(tmp_path / "stream.lock"):
        with pytest.raises(config.ConfigError, match="already running"):
            with exclusive_lock(tmp_path / "stream.lock"):
                pass
    with exclusive_lock(tmp_path / "stream.lock"):
        pass  # released again


def test_local_stream_refuses_real_aws() -> None:
    from gadget_pipeline.aws import AwsTarget

    with pytest.raises(config.ConfigError, match="local"):
        LocalStream(AwsTarget(endpoint_url=None, region="us-east-1"), {})


# --------------------------------------------------------------------------- Firehose prefixes and names


def test_deployed_prefixes_expand_from_the_arrival_time() -> None:
    assert expand_prefix(RAW_PREFIX, ARRIVAL) == "raw/gadget_orders_cdc/year=2025/month=03/day=07/hour=05/"
    assert expand_prefix(ERROR_PREFIX, ARRIVAL, error_output_type="processing-failed") == (
        "errors/processing-failed/year=2025/month=03/day=07/"
    )


def test_prefix_without_expressions_gets_the_default_time_path() -> None:
    assert expand_prefix("plain/", ARRIVAL) == "plain/2025/03/07/05/"
    assert expand_prefix("", ARRIVAL) == "2025/03/07/05/"
    errors = expand_prefix("", ARRIVAL, error_output_type="processing-failed")
    assert errors == "processing-failed/2025/03/07/05/"


def test_prefix_expressions_that_firehose_rejects_are_refused() -> None:
    with pytest.raises(FirehoseError, match="only valid in ErrorOutputPrefix"):
        expand_prefix("x/!{firehose:error-output-type}/", ARRIVAL)
    with pytest.raises(FirehoseError, match="unsupported prefix expression"):
        expand_prefix("x/!{partitionKeyFromQuery:id}/", ARRIVAL)
    with pytest.raises(FirehoseError, match="unsupported timestamp pattern"):
        expand_prefix("x/!{timestamp:yyyy-MMM}/", ARRIVAL)
    with pytest.raises(ValueError, match="UTC"):
        expand_prefix(RAW_PREFIX, ARRIVAL.astimezone(timezone(timedelta(hours=2))))


def test_timestamp_patterns_and_random_string() -> None:
    assert format_timestamp("yyyy-MM-dd HH:mm:ss", ARRIVAL) == "2025-03-07 05:04:03"
    assert format_timestamp("yy/MM", ARRIVAL) == "25/03"
    assert expand_prefix("r/!{firehose:random-string}/", ARRIVAL, random_string=lambda: "abc") == "r/abc/"
    assert re.fullmatch(r"r/[A-Za-z0-9]{11}/", expand_prefix("r/!{firehose:random-string}/", ARRIVAL))


def test_object_names_follow_firehose() -> None:
    key = object_key("raw/p/", "kinesis-gadget-data-s3", "1", ARRIVAL, gzip_compressed=False)
    assert re.fullmatch(r"raw/p/kinesis-gadget-data-s3-1-2025-03-07-05-04-03-"
                        r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", key), key
    gzipped = object_key("e/", "s", "7", ARRIVAL, gzip_compressed=True, unique="u")
    assert gzipped == "e/s-7-2025-03-07-05-04-03-u.gz"


# --------------------------------------------------------------------------- the Lambda contract


def ok(record_id: str, data: bytes = b"line\n") -> dict:
    return {"recordId": record_id, "result": "Ok", "data": base64.b64encode(data).decode()}


def test_a_valid_response_is_decoded() -> None:
    response = {"records": [ok("a"), {"recordId": "b", "result": "Dropped"},
                            {"recordId": "c", "result": "ProcessingFailed", "data": "Zm9v"}]}
    results = validate_transform_response(response, ["a", "b", "c"])
    assert results["a"].data == b"line\n" and results["a"].result == "Ok"
    assert results["b"].result == "Dropped" and results["c"].result == "ProcessingFailed"


@pytest.mark.parametrize(
    ("response", "code"),
    [
        (None, "Lambda.JsonProcessingException"),
        ({"records": "nope"}, "Lambda.JsonProcessingException"),
        ({"records": [ok("a")]}, "Lambda.MissingRecordId"),
        ({"records": [ok("a"), ok("a"), ok("b")]}, "Lambda.DuplicatedRecordId"),
        ({"records": [ok("a"), ok("b"), ok("zzz")]}, "Lambda.JsonProcessingException"),
        ({"records": [ok("a"), {"recordId": "b", "result": "OK"}]}, "Lambda.JsonProcessingException"),
        ({"records": [ok("a"), {"recordId": "b", "result": "Ok", "data": "***"}]},
         "Lambda.JsonProcessingException"),
        ({"records": [ok("a"), {"recordId": "b", "result": "Ok"}]}, "Lambda.JsonProcessingException"),
        ({"records": [ok("a"), "b"]}, "Lambda.JsonProcessingException"),
    ],
)
def test_contract_violations_fail_the_whole_batch(response: object, code: str) -> None:
    with pytest.raises(InvalidTransformOutput) as failure:
        validate_transform_response(response, ["a", "b"])
    assert failure.value.code == code


def test_an_expired_shard_iterator_is_renewed_once() -> None:
    import boto3
    from botocore.stub import Stubber

    from gadget_pipeline.ingest.shards import get_records_renewing

    credentials = {"aws_access_key_id": "x", "aws_secret_access_key": "x"}
    kinesis = boto3.client("kinesis", region_name="us-east-1", **credentials)
    renewed: list[str] = []
    with Stubber(kinesis) as stub:
        stub.add_client_error("get_records", "ExpiredIteratorException",
                              expected_params={"ShardIterator": "old", "Limit": 10})
        page = {"Records": [], "NextShardIterator": "next", "MillisBehindLatest": 0}
        stub.add_response("get_records", page, expected_params={"ShardIterator": "fresh", "Limit": 10})
        response, iterator = get_records_renewing(kinesis, "old", 10, lambda: renewed.append("x") or "fresh")
        stub.add_client_error("get_records", "ProvisionedThroughputExceededException")
        with pytest.raises(kinesis.exceptions.ProvisionedThroughputExceededException):
            get_records_renewing(kinesis, "next", 10, lambda: "never")
    assert iterator == "fresh" and renewed == ["x"] and response["NextShardIterator"] == "next"
