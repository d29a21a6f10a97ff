"""A faster moto server: ``python -m gadget_pipeline.moto_fastpath -H 127.0.0.1 -p PORT``.

Three hot spots of moto 5.2.5's server, measured under the local pipeline's load, each replaced by an
equivalent that gives the same answers:

* DynamoDB Streams ``GetRecords`` spends ~1.4 ms of server CPU per record in moto's generic,
  model-driven response serializer (every typed attribute value is walked member by member), which
  caps the pipeline at a few hundred events/s. moto keeps the records in wire shape already, so they
  are written with ``json.dumps`` (the same document: test_ingest_units.py compares both).
* Every request lists moto's package folder (``os.listdir`` + ``isdir`` on ~150 entries) under the
  server's global lock to find the backend; the listing cannot change while the server runs: cached.
* Kinesis ``put_record`` copies every key of the shard to find the last sequence number (O(n) per
  record, so O(n^2) over a session); the dict is ordered, so the last key is read directly.

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


def install() -> None:
    """Install the three replacements (idempotent)."""
    import functools

    from moto import backends
    from moto.dynamodbstreams.responses import DynamoDBStreamsHandler
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


def main(argv: Sequence[str] | None = None) -> None:
    install()
    from moto.server import main as moto_main

    moto_main(list(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    main()
