"""A faster moto server: ``python -m gadget_pipeline.moto_fastpath -H 127.0.0.1 -p PORT``.

Hot spots of moto 5.2.5's server, measured under the local pipeline's load, each replaced by an
equivalent that gives the same answers:

* DynamoDB Streams ``GetRecords`` spends ~1.4 ms of server CPU per record in moto's generic,
  model-driven response serializer (every typed attribute value is walked member by member), which
  caps the pipeline at a few hundred events/s. moto keeps the records in wire shape already, so they
  are written with ``json.dumps`` (the same document: test_ingest_units.py compares both).
* Every request lists moto's package folder (``os.listdir`` + ``isdir`` on ~150 entries) under the
  server's global lock to find the backend; the listing cannot change while the server runs: cached.
* Kinesis ``put_record`` copies every key of the shard to find the last sequence number (O(n) per
  record, so O(n^2) over a session); the dict is ordered, so the last key is read directly.
* Glue ``GetTable`` and ``GetPartitions`` go through the same generic serializer: ~0.25 ms per partition,
  ~1 ms per 20-column table, so one listing of a table's partitions cost 10-25 ms. moto keeps tables and
  partitions as the TableInput/PartitionInput documents the client sent (already wire shape, validated
  by botocore against the same model): written with ``json.dumps`` (test_moto_fastpath.py compares).

* S3 ``ListObjectsV2`` goes through the same serializer, which parses each object's LastModified text
  with dateutil to format it again: ~0.2 ms per object, so one listing of 100 objects took ~25 ms. The result
  moto's handler built is written as S3's XML directly (a listing with a delimiter still goes to moto's).
* Full garbage collections walk the whole server state (60-200 ms stalls): see quiet_garbage_collector.

Start the server through this module (same arguments as ``python -m moto.server``) to use them.
"""

from __future__ import annotations

import base64
import calendar
import json
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from xml.sax.saxutils import escape as xml_escape


def _wire_value(value: Any) -> Any:
    if isinstance(value, datetime):
        # As moto's serializer: naive means UTC; epoch seconds, sub-millisecond digits truncated.
        seconds = calendar.timegm(value.utctimetuple())
        return seconds + (value.microsecond // 1000) / 1000.0 if value.microsecond else seconds
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"cannot serialize {type(value).__name__}")


def get_records_body(result: dict[str, Any]) -> str:
    """The GetRecords response document for moto's ``{"Records": [...], "NextShardIterator": ...}``."""
    return json.dumps(result, default=_wire_value)


def glue_table_body(table: Any) -> str:
    """The GetTable response document for one of moto's Glue tables."""
    return json.dumps({"Table": table.as_dict()}, default=_wire_value)


def glue_partitions_body(partitions: Sequence[Any]) -> str:
    """The GetPartitions response document for moto's Glue partitions (moto does not paginate them)."""
    return json.dumps({"Partitions": [partition.as_dict() for partition in partitions]}, default=_wire_value)


def list_objects_v2_body(result: dict[str, Any]) -> str:
    """The ListObjectsV2 response document (S3's XML) for the result moto's handler built (no
    delimiter: a listing with CommonPrefixes goes to moto's serializer)."""
    parts = ['<?xml version="1.0" encoding="utf-8"?>\n'
             '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">',
             f"<IsTruncated>{'true' if result['IsTruncated'] else 'false'}</IsTruncated>"]
    for item in result["Contents"]:
        parts.append(f"<Contents><Key>{_xml(item['Key'])}</Key><LastModified>{item['LastModified']}"
                     f"</LastModified><ETag>{_xml(item['ETag'])}</ETag>")
        parts.extend(f"<ChecksumAlgorithm>{_xml(name)}</ChecksumAlgorithm>"
                     for name in item.get("ChecksumAlgorithm", ()))
        parts.append(f"<Size>{int(item['Size'])}</Size><StorageClass>{_xml(item['StorageClass'])}"
                     "</StorageClass>")
        if "Owner" in item:
            parts.append(f"<Owner><DisplayName>{_xml(item['Owner']['DisplayName'])}</DisplayName>"
                         f"<ID>{_xml(item['Owner']['ID'])}</ID></Owner>")
        parts.append("</Contents>")
    parts.append(f"<Name>{_xml(result['Name'])}</Name>")
    parts.append(f"<Prefix>{_xml(result['Prefix'])}</Prefix>" if result["Prefix"] else "<Prefix/>")
    parts.append(f"<MaxKeys>{int(result['MaxKeys'])}</MaxKeys>")
    parts.append(f"<KeyCount>{int(result['KeyCount'])}</KeyCount>")
    for name in ("EncodingType", "NextContinuationToken", "StartAfter"):
        if name in result:
            parts.append(f"<{name}>{_xml(result[name])}</{name}>")
    parts.append("</ListBucketResult>")
    return "".join(parts)


def _xml(value: Any) -> str:
    return xml_escape(str(value))


def install() -> None:
    """Install the replacements (idempotent)."""
    import functools

    from moto import backends
    from moto.core.responses import ActionResult
    from moto.dynamodbstreams.responses import DynamoDBStreamsHandler
    from moto.glue.responses import GlueResponse
    from moto.kinesis.models import Shard
    from moto.s3.responses import S3Response

    if getattr(DynamoDBStreamsHandler.get_records, "_gadget_fastpath", False):
        return
    module_list = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = functools.cache(lambda: module_list)  # type: ignore[assignment]

    def get_max_sequence_number(self: Shard) -> int:
        return next(reversed(self.records)) if self.records else 0

    Shard.get_max_sequence_number = get_max_sequence_number  # type: ignore[method-assign]

    def get_records(self: DynamoDBStreamsHandler) -> str:
        iterator = self._get_param("ShardIterator")
        limit = self._get_param("Limit")
        return get_records_body(self.backend.get_records(iterator, 1000 if limit is None else limit))

    get_records._gadget_fastpath = True  # type: ignore[attr-defined]
    DynamoDBStreamsHandler.get_records = get_records  # type: ignore[method-assign]

    def get_table(self: GlueResponse) -> str:
        return glue_table_body(self.glue_backend.get_table(self.parameters.get("DatabaseName"),
                                                           self.parameters.get("Name")))

    def get_partitions(self: GlueResponse) -> str:
        return glue_partitions_body(self.glue_backend.get_partitions(
            self.parameters.get("DatabaseName"), self.parameters.get("TableName"),
            self.parameters.get("Expression")))

    GlueResponse.get_table = get_table  # type: ignore[method-assign]
    GlueResponse.get_partitions = get_partitions  # type: ignore[method-assign]

    serialized = S3Response.serialized

    def s3_serialized(self: S3Response, action_result: ActionResult) -> Any:
        result = action_result.result
        if self.data.get("Action") == "ListObjectsV2" and isinstance(result, dict) \
                and "Delimiter" not in result:
            return 200, {"Content-Type": "application/xml", **self.response_headers}, \
                list_objects_v2_body(result)
        return serialized(self, action_result)

    S3Response.serialized = s3_serialized  # type: ignore[method-assign]


# the services the stack deploys or the local runtimes call (infra/template.yaml, deploy/local.py)
STACK_SERVICES = ("athena", "dynamodb", "dynamodbstreams", "firehose", "glue", "iam", "kinesis", "lambda",
                  "logs", "pipes", "s3", "sqs", "ssm", "sts")


def quiet_garbage_collector(services: Sequence[str] = STACK_SERVICES) -> None:
    """Keep the cyclic garbage collector from stalling requests (call once, in the server process).

    moto's server keeps its modules, each service's botocore model (~3k objects each) and all its data
    (S3 keys, Glue partitions) in memory, and a full collection walks every one of them: measured 60-200 ms
    per full collection, spent inside whichever request triggered it (the first incremental refresh after
    a crawl waited 170 ms on one GetPartitions). So the backends and models of the stack's services are
    loaded now and everything alive is frozen (gc.freeze: never walked again); after each full collection
    its survivors -- long-lived server state -- are frozen too, so a full collection walks only what
    arrived since the last one. Frozen objects are still freed by reference counting; only a cycle among
    them stays (moto keeps even deleted S3 keys referenced, so that costs little here)."""
    import gc

    from moto import backends
    from moto.core.utils import get_service_model

    for service in services:
        backends.get_backend(service)  # type: ignore[call-overload]
        get_service_model(service)
    gc.collect()
    gc.freeze()

    def freeze_survivors(phase: str, info: dict[str, int]) -> None:
        if phase == "stop" and info["generation"] == 2:
            gc.freeze()

    gc.callbacks.append(freeze_survivors)


def main(argv: Sequence[str] | None = None) -> None:
    install()
    quiet_garbage_collector()
    from moto.server import main as moto_main

    moto_main(list(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    main()
