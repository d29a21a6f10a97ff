"""The moto fast path (gadget_pipeline/moto_fastpath.py) answers exactly what moto's own serializer would:
each replaced handler's document is compared with moto's, for the shapes the project sends."""

from __future__ import annotations

import json
from typing import Any

import boto3
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
