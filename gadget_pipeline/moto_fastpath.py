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


def install() -> None:
    """Install the replacements (idempotent)."""
    import functools

    from moto import backends
    from moto.dynamodbstreams.responses import DynamoDBStreamsHandler
    from moto.glue.responses import GlueResponse
    from moto.kinesis.models import Shard

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


def main(argv: Sequence[str] | None = None) -> None:
    install()
    from moto.server import main as moto_main

    moto_main(list(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    main()
