"""The moto fast path (gadget_pipeline/moto_fastpath.py) answers exactly what moto's own serializer would:
each replaced handler's document is compared with moto's, for the shapes the project sends."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.core.responses import ActionContext, ActionResult
from moto.core.serialize import get_serializer_class
from moto.core.utils import get_service_model


def moto_document(service_name: str, protocol: str, operation: str, result: dict[str, Any]) -> Any:
    """What moto's generic serializer writes for `result` as the response of `operation`."""
    service = get_service_model(service_name)
    context = ActionContext(service, service.operation_model(operation),
                            get_serializer_class(service_name, protocol), object())  # type: ignore[arg-type]
    _, _, body = ActionResult(result).execute_result(context)
    return json.loads(body)


def test_moto_fastpath_writes_the_same_get_records_document_as_moto() -> None:
    from moto.dynamodbstreams.models import dynamodbstreams_backends

    from gadget_pipeline.moto_fastpath import get_records_body

    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        arn = dynamodb.create_table(
            TableName="T", BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "order_id", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "order_id", "KeyType": "HASH"}],
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )["TableDescription"]["LatestStreamArn"]
        item = {"order_id": {"S": "o"}, "price": {"N": "19.90"}, "blob": {"B": b"\x00\xff"},
                "address": {"M": {"lines": {"L": [{"S": "1"}, {"NULL": True}, {"BOOL": False}]}}},
                "tags": {"SS": ["b", "a"]}, "sizes": {"NS": ["2", "1.50"]}, "blobs": {"BS": [b"\x01"]}}
        dynamodb.put_item(TableName="T", Item=item)
        dynamodb.update_item(TableName="T", Key={"order_id": {"S": "o"}}, UpdateExpression="SET price = :p",
                             ExpressionAttributeValues={":p": {"N": "20"}})
        dynamodb.delete_item(TableName="T", Key={"order_id": {"S": "o"}})
        streams = dynamodbstreams_backends["123456789012"]["us-east-1"]  # moto's own objects, no HTTP
        shard = streams.describe_stream(arn)["Shards"][0]["ShardId"]
        iterator = streams.get_shard_iterator(arn, shard, "TRIM_HORIZON")
        result = streams.get_records(iterator.arn, 1000)
        slow = moto_document("dynamodbstreams", "json", "GetRecords", result)

    assert len(result["Records"]) == 3
    fast = json.loads(get_records_body(result))
    for ours, theirs in zip(fast["Records"], slow["Records"], strict=True):
        assert ours == theirs, (ours, theirs)
    assert fast == slow


def test_moto_fastpath_writes_the_same_glue_documents_as_moto() -> None:
    from moto.glue.models import glue_backends

    from gadget_pipeline.moto_fastpath import glue_partitions_body, glue_table_body

    descriptor = {
        "Columns": [{"Name": "order_id", "Type": "string", "Comment": "the key"},
                    {"Name": "unit_price", "Type": "decimal(12,2)"},
                    {"Name": "shipping", "Type": "struct<city:string,postal_code:string>"}],
        "Location": "s3://bucket-1/curated/t/", "InputFormat": "org.apache.hadoop.mapred.TextInputFormat",
        "OutputFormat": "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat",
        "Compressed": False, "NumberOfBuckets": -1, "StoredAsSubDirectories": False,
        "SerdeInfo": {"SerializationLibrary": "org.openx.data.jsonserde.JsonSerDe",
                      "Parameters": {"paths": "order_id,unit_price"}},
        "Parameters": {"classification": "json"}, "BucketColumns": [], "SortColumns": [],
    }
    with mock_aws():
        glue = boto3.client("glue", region_name="us-east-1")
        glue.create_database(DatabaseInput={"Name": "db"})
        table_input = {"Name": "t", "TableType": "EXTERNAL_TABLE", "StorageDescriptor": descriptor,
                       "PartitionKeys": [{"Name": key, "Type": "string"} for key in ("year", "hour")],
                       "Parameters": {"EXTERNAL": "TRUE", "gadget.raw_watermark": "2024/05/01/13"}}
        glue.create_table(DatabaseName="db", TableInput=table_input)
        glue.update_table(DatabaseName="db", TableInput={**table_input, "Description": "updated"})
        glue.batch_create_partition(DatabaseName="db", TableName="t", PartitionInputList=[
            {"Values": ["2024", "13"], "StorageDescriptor": {**descriptor, "Location": "s3://bucket-1/t/13/"},
             "Parameters": {"gadget.orders": "12"}},
            {"Values": ["2024", "14"], "StorageDescriptor": descriptor, "LastAccessTime": 1714571000},
        ])
        backend = glue_backends["123456789012"]["us-east-1"]  # moto's own objects, no HTTP
        table = backend.get_table("db", "t")
        partitions = backend.get_partitions("db", "t", "hour >= '13'")

        assert len(partitions) == 2 and table.updated_time is not None
        assert json.loads(glue_table_body(table)) == moto_document("glue", "json", "GetTable",
                                                                  {"Table": table.as_dict()})
        fast = json.loads(glue_partitions_body(partitions))
        slow = moto_document("glue", "json", "GetPartitions",
                             {"Partitions": [partition.as_dict() for partition in partitions]})
        assert fast == slow
        assert json.loads(glue_partitions_body([])) == {"Partitions": []}


def test_moto_fastpath_writes_the_same_listing_as_moto() -> None:
    """ListObjectsV2 without a delimiter, as the handler builds it: both documents parse (botocore's
    parser, as every client reads them) to the same answer -- keys that need XML escaping or URL
    encoding, checksums, owners, a truncated page, an empty one."""
    from botocore.parsers import create_parser

    from gadget_pipeline.moto_fastpath import list_objects_v2_body

    service = get_service_model("s3")
    operation = service.operation_model("ListObjectsV2")
    context = ActionContext(service, operation, get_serializer_class("s3", "rest-xml"),
                            object())  # type: ignore[arg-type]

    def parsed(body: str | bytes) -> dict[str, Any]:
        raw = body.encode() if isinstance(body, str) else body
        answer = create_parser("rest-xml").parse({"body": raw, "headers": {}, "status_code": 200},
                                                 operation.output_shape)
        answer.pop("ResponseMetadata", None)
        return answer

    def item(key: str, **extra: Any) -> dict[str, Any]:
        return {"Key": key, "LastModified": "2024-05-01T13:07:42.000Z",
                "ETag": '"9b2cf535f27731c974343645a3985328"', "Size": 4213, "StorageClass": "STANDARD",
                **extra}

    results = [
        {"Name": "gadget-sales-cdc", "Prefix": "raw/", "MaxKeys": 1000, "KeyCount": 2, "IsTruncated": False,
         "Contents": [item("raw/year=2024/hour=13/a&b <c>.json", ChecksumAlgorithm=["CRC32"]),
                      item("raw/year=2024/hour=14/'x\"")]},
        {"Name": "gadget-sales-cdc", "Prefix": "raw%2F", "MaxKeys": 1, "KeyCount": 1, "IsTruncated": True,
         "EncodingType": "url", "NextContinuationToken": "e91fb97eaa6d11d5290d6b208d7bfa75",
         "StartAfter": "raw/year=2024/hour=12", "Contents": [item("raw/b%20c%26d", Owner={
             "ID": "75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a",
             "DisplayName": "webfile"})]},
        {"Name": "gadget-sales-cdc", "Prefix": "", "MaxKeys": 1000, "KeyCount": 0, "IsTruncated": False,
         "Contents": []},
    ]
    for result in results:
        _, _, slow = ActionResult(result).execute_result(context)
        fast = list_objects_v2_body(result)
        assert parsed(fast) == parsed(slow), result
    first_key = parsed(list_objects_v2_body(results[0]))["Contents"][0]["Key"]
    assert first_key == "raw/year=2024/hour=13/a&b <c>.json"


def test_the_server_freezes_long_lived_objects_so_full_collections_stay_short() -> None:
    """In a process of its own (it changes the collector for good): after start-up everything alive is
    frozen, and what survives a full collection is frozen too."""
    code = (
        "import gc\n"
        "from gadget_pipeline.moto_fastpath import quiet_garbage_collector\n"
        "quiet_garbage_collector(('s3', 'glue'))\n"
        "frozen = gc.get_freeze_count()\n"
        "kept = [[n] for n in range(50_000)]\n"
        "gc.collect()\n"
        "print(frozen > 10_000, gc.get_freeze_count() >= frozen + 50_000)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          check=True)
    assert done.stdout.split() == ["True", "True"], done.stderr


def test_aws_timestamps_parse_to_the_same_values_as_botocore() -> None:
    from botocore.utils import parse_timestamp

    from gadget_pipeline.aws import parse_aws_timestamp

    for text in ["2024-05-01T13:07:42.000Z", "2024-05-01T13:07:42Z", "2024-05-01T13:07:42.123456+02:00",
                 "2024-05-01T13:07:42", "2024-05-01 13:07:42", "Wed, 01 May 2024 13:07:42 GMT",
                 "1714568862", 1714568862.5, "20240501"]:
        assert parse_aws_timestamp(text) == parse_timestamp(text), text
    with pytest.raises(ValueError, match="Invalid timestamp"):
        parse_aws_timestamp("2024-13-01T00:00:00Z")
