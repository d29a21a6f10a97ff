"""Local EventBridge Pipes runtime: the table's DynamoDB stream -> the Kinesis target.

moto stores the pipe but never moves data, so this runner does what the deployed pipe says, reading
every setting back from ``pipes.describe_pipe`` (source, target, batch size, batching window, starting
position, partition key path). Each stream record is shaped as Pipes delivers it (``eventSourceARN``
added, ``ApproximateCreationDateTime`` in whole epoch seconds as on AWS) and written with ``put_records``.

Delivery is at-least-once: a shard's checkpoint (last delivered sequence number, in a JSON file under
``config.state_dir()`` keyed by pipe and stream ARN) advances only after Kinesis accepted the batch.
Never attach a Lambda event-source mapping to the stream on moto: it consumes the records.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from gadget_pipeline import config
from gadget_pipeline.aws import AwsTarget
from gadget_pipeline.ingest.checkpoint import CheckpointStore
from gadget_pipeline.ingest.shards import get_records_renewing, readable_shards

LOGGER = logging.getLogger(__name__)

CHECKPOINT_FILE = "pipe-checkpoints.json"
STREAM_READ_LIMIT = 1000  # DynamoDB Streams GetRecords maximum
KINESIS_MAX_RECORDS = 500  # PutRecords limits
KINESIS_MAX_REQUEST_BYTES = 5 * 1024 * 1024
KINESIS_MAX_RECORD_BYTES = 1024 * 1024
KINESIS_MAX_PARTITION_KEY = 256
MAX_PUT_ATTEMPTS = 8
SHARD_REFRESH_SECONDS = 10.0
# Pipes polls a DynamoDB stream shard about four times a second; a full page is followed up at once.
SHARD_POLL_INTERVAL_SECONDS = 0.25


class PipeError(RuntimeError):
    """The pipe cannot deliver: a setting it cannot honour or a target that keeps refusing records."""


# --------------------------------------------------------------------------- partition key paths

_PATH_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class PartitionKeyPath:
    """A pipe's ``PartitionKey``: a static value, or a dotted JSON path such as ``$.dynamodb.Keys.id.S``."""

    expression: str
    segments: tuple[str, ...] | None  # None: a static partition key

    def evaluate(self, record: Mapping[str, Any]) -> str:
        if self.segments is None:
            return self.expression
        value: Any = record
        for depth, segment in enumerate(self.segments):
            if not isinstance(value, Mapping) or segment not in value:
                walked = "$." + ".".join(self.segments[: depth + 1])
                raise PipeError(f"partition key path {self.expression} has no value in the record "
                                f"({walked} missing)")
            value = value[segment]
        if not isinstance(value, str) or not value:
            raise PipeError(f"partition key path {self.expression} must select a non-empty string, "
                            f"not {value!r}")
        if len(value) > KINESIS_MAX_PARTITION_KEY:
            raise PipeError(f"partition key from {self.expression} is longer than "
                            f"{KINESIS_MAX_PARTITION_KEY} chars")
        return value


def compile_partition_key(expression: str) -> PartitionKeyPath:
    """Parse a pipe ``PartitionKey``. Supported: a static value or ``$.a.b.c`` (plain member names).

    Anything richer (brackets, wildcards, filters, quoted names) is refused with a clear error rather
    than guessed at, because a wrong key silently breaks per-order ordering on the stream.
    """
    if not isinstance(expression, str) or not expression:
        raise PipeError("the pipe's PartitionKey is empty")
    if not expression.startswith("$"):
        if len(expression) > KINESIS_MAX_PARTITION_KEY:
            raise PipeError(f"static partition key longer than {KINESIS_MAX_PARTITION_KEY} chars")
        return PartitionKeyPath(expression, None)
    if not expression.startswith("$."):
        raise PipeError(f"unsupported partition key path {expression!r}: expected a dotted path such as "
                        "$.dynamodb.Keys.order_id.S")
    segments = tuple(expression[2:].split("."))
    bad = [segment for segment in segments if not _PATH_SEGMENT.fullmatch(segment)]
    if bad:
        raise PipeError(f"unsupported partition key path {expression!r} (segment {bad[0]!r}): only dotted "
                        "member names are supported, such as $.dynamodb.Keys.order_id.S")
    return PartitionKeyPath(expression, segments)


# --------------------------------------------------------------------------- record shaping


def epoch_seconds(value: Any) -> int:
    """ApproximateCreationDateTime as AWS sends it: whole epoch seconds (rounded down).

    botocore parses the stream's timestamp into a datetime; moto keeps milliseconds, AWS does not.
    """
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime for ApproximateCreationDateTime")
        return math.floor(value.timestamp())
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return math.floor(value)
    raise ValueError(f"not a timestamp: {value!r}")


def _json_default(value: Any) -> Any:
    # botocore decodes binary attribute values (B, BS) to bytes; on the wire they are base64 text.
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"cannot encode {type(value).__name__} in a stream record")


def shape_record(record: Mapping[str, Any], source_arn: str) -> dict[str, Any]:
    """A DynamoDB Streams record (as botocore returns it) -> the event the pipe sends to its target."""
    shaped = {key: value for key, value in record.items() if key != "dynamodb"}
    dynamodb = dict(record["dynamodb"])
    dynamodb["ApproximateCreationDateTime"] = epoch_seconds(dynamodb["ApproximateCreationDateTime"])
    shaped["dynamodb"] = dynamodb
    shaped["eventSourceARN"] = source_arn
    return shaped


def encode_record(shaped: Mapping[str, Any]) -> bytes:
    return json.dumps(shaped, separators=(",", ":"), default=_json_default).encode("utf-8")


def put_records_chunks(entries: Sequence[Mapping[str, Any]]) -> list[list[Mapping[str, Any]]]:
    """Split PutRecords entries into requests within Kinesis limits (500 records, 5 MiB incl. keys)."""
    chunks: list[list[Mapping[str, Any]]] = []
    current: list[Mapping[str, Any]] = []
    size = 0
    for entry in entries:
        entry_size = len(entry["Data"]) + len(entry["PartitionKey"].encode("utf-8"))
        if current and (len(current) >= KINESIS_MAX_RECORDS or size + entry_size > KINESIS_MAX_REQUEST_BYTES):
            chunks.append(current)
            current, size = [], 0
        current.append(entry)
        size += entry_size
    if current:
        chunks.append(current)
    return chunks


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class PipeSettings:
    name: str
    arn: str
    running: bool
    source_stream_arn: str
    target_stream_arn: str
    target_stream_name: str
    batch_size: int
    batching_window_seconds: float
    starting_position: str
    partition_key: PartitionKeyPath

    @classmethod
    def from_description(cls, description: Mapping[str, Any]) -> PipeSettings:
        name = description["Name"]
        source = description.get("Source", "")
        target = description.get("Target", "")
        if ":dynamodb:" not in source or "/stream/" not in source:
            raise PipeError(f"pipe {name}: source {source!r} is not a DynamoDB stream (needed locally)")
        if ":kinesis:" not in target or ":stream/" not in target:
            raise PipeError(f"pipe {name}: target {target!r} is not a Kinesis stream (needed locally)")
        stream_parameters = description.get("SourceParameters", {}).get("DynamoDBStreamParameters", {})
        kinesis_parameters = description.get("TargetParameters", {}).get("KinesisStreamParameters", {})
        if "PartitionKey" not in kinesis_parameters:
            raise PipeError(f"pipe {name}: TargetParameters.KinesisStreamParameters.PartitionKey is missing")
        states = (description.get("DesiredState"), description.get("CurrentState"))
        return cls(
            name=name,
            arn=description.get("Arn", name),
            running="STOPPED" not in states,
            source_stream_arn=source,
            target_stream_arn=target,
            target_stream_name=target.split(":stream/", 1)[1],
            batch_size=int(stream_parameters.get("BatchSize", 100)),
            batching_window_seconds=float(stream_parameters.get("MaximumBatchingWindowInSeconds", 0)),
            starting_position=stream_parameters.get("StartingPosition", "LATEST"),
            partition_key=compile_partition_key(kinesis_parameters["PartitionKey"]),
        )


def load_pipe_settings(target: AwsTarget, pipe_name: str) -> PipeSettings:
    description = target.client("pipes").describe_pipe(Name=pipe_name)
    return PipeSettings.from_description(description)


# --------------------------------------------------------------------------- the runner


@dataclass
class _PendingRecord:
    sequence_number: str
    data: bytes
    partition_key: str
    received_at: float  # monotonic: starts the batching window


@dataclass
class _ShardCursor:
    shard_id: str
    iterator: str | None = None
    last_read: str | None = None  # sequence number of the last record read (maybe not yet delivered)
    closed: bool = False  # the shard ended (NextShardIterator absent)
    caught_up: bool = False  # the last GetRecords returned nothing
    next_poll: float = 0.0  # monotonic time before which an idle shard is not read again
    pending: list[_PendingRecord] = field(default_factory=list)


@dataclass
class PipeStats:
    read: int = 0
    delivered: int = 0
    batches: int = 0
    put_calls: int = 0
    retried_entries: int = 0
    last_source_time: float | None = None  # ApproximateCreationDateTime of the newest record read


class PipeRunner:
    """Moves the DynamoDB stream onto Kinesis. Call ``poll`` in a loop; it never blocks for long."""

    def __init__(self, target: AwsTarget, settings: PipeSettings, *, state_dir: Path | None = None) -> None:
        self.target = target
        self.settings = settings
        self.streams = target.client("dynamodbstreams")
        self.kinesis = target.client("kinesis")
        path = (state_dir or config.state_dir()) / CHECKPOINT_FILE
        self.checkpoints = CheckpointStore(path, scope=f"{settings.arn}|{settings.source_stream_arn}")
        self.stats = PipeStats()
        self._cursors: dict[str, _ShardCursor] = {}
        self._shards: list[dict[str, Any]] = []
        self._shards_listed_at = -math.inf
        self._put_batch_size = min(settings.batch_size, KINESIS_MAX_RECORDS)

    @classmethod
    def for_pipe(cls, target: AwsTarget, pipe_name: str, *, state_dir: Path | None = None) -> PipeRunner:
        return cls(target, load_pipe_settings(target, pipe_name), state_dir=state_dir)

    # -- reading

    def _list_shards(self) -> list[dict[str, Any]]:
        now = time.monotonic()
        if now - self._shards_listed_at >= SHARD_REFRESH_SECONDS:
            shards: list[dict[str, Any]] = []
            request: dict[str, Any] = {"StreamArn": self.settings.source_stream_arn}
            while True:
                description = self.streams.describe_stream(**request)["StreamDescription"]
                shards.extend(description.get("Shards", []))
                last = description.get("LastEvaluatedShardId")
                if not last:
                    break
                request["ExclusiveStartShardId"] = last
            self._shards, self._shards_listed_at = shards, now
        return self._shards

    def _iterator(self, cursor: _ShardCursor) -> str:
        resume_after = cursor.last_read or self.checkpoints.sequence_number(cursor.shard_id)
        request = {"StreamArn": self.settings.source_stream_arn, "ShardId": cursor.shard_id}
        if resume_after is not None:
            request.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=resume_after)
        else:
            request["ShardIteratorType"] = self.settings.starting_position
        return self.streams.get_shard_iterator(**request)["ShardIterator"]

    def _read_shard(self, cursor: _ShardCursor, *, eager: bool) -> int:
        if cursor.closed or (not eager and time.monotonic() < cursor.next_poll):
            return 0
        if cursor.iterator is None:
            cursor.iterator = self._iterator(cursor)
        response, cursor.iterator = get_records_renewing(
            self.streams, cursor.iterator, STREAM_READ_LIMIT, lambda: self._iterator(cursor)
        )
        records = response.get("Records", [])
        cursor.iterator = response.get("NextShardIterator")
        if cursor.iterator is None:
            cursor.closed = True
        cursor.caught_up = not records
        now = time.monotonic()
        cursor.next_poll = now if len(records) >= STREAM_READ_LIMIT else now + SHARD_POLL_INTERVAL_SECONDS
        source_arn = self.settings.source_stream_arn
        key = self.settings.partition_key
        for record in records:
            shaped = shape_record(record, source_arn)
            data = encode_record(shaped)
            if len(data) > KINESIS_MAX_RECORD_BYTES:
                raise PipeError(f"stream record {record.get('eventID')} is larger than a Kinesis record "
                                "(1 MiB)")
            sequence_number = shaped["dynamodb"]["SequenceNumber"]
            cursor.pending.append(_PendingRecord(sequence_number, data, key.evaluate(shaped), now))
            cursor.last_read = sequence_number
        if records:
            self.stats.read += len(records)
            self.stats.last_source_time = float(shaped["dynamodb"]["ApproximateCreationDateTime"])
        return len(records)

    def read(self, *, eager: bool = False) -> int:
        """One GetRecords call per readable shard that is due (every one when ``eager``); records read."""
        shards = self._list_shards()
        for shard in shards:
            self._cursors.setdefault(shard["ShardId"], _ShardCursor(shard["ShardId"]))
        total = 0
        for shard_id in readable_shards(shards, self.checkpoints.is_finished):
            total += self._read_shard(self._cursors[shard_id], eager=eager)
        return total

    # -- delivering

    def dispatch(self, *, force: bool = False) -> int:
        """Send full batches, and partial ones whose batching window passed (or all when ``force``).

        Positions are saved once per call, covering exactly the batches Kinesis accepted (also when a
        later batch fails), so the checkpoint never runs ahead of the target.
        """
        delivered = 0
        accepted: dict[str, str] = {}
        finished: set[str] = set()
        now = time.monotonic()
        window = self.settings.batching_window_seconds
        try:
            for cursor in self._cursors.values():
                while cursor.pending and (
                    len(cursor.pending) >= self._put_batch_size
                    or force
                    or now - cursor.pending[0].received_at >= window
                ):
                    batch = cursor.pending[: self._put_batch_size]
                    self._put(batch)
                    del cursor.pending[: len(batch)]
                    accepted[cursor.shard_id] = batch[-1].sequence_number
                    delivered += len(batch)
                    self.stats.batches += 1
                if cursor.closed and not cursor.pending and not self.checkpoints.is_finished(cursor.shard_id):
                    finished.add(cursor.shard_id)
        finally:
            self.checkpoints.commit(accepted, finished)
            self.stats.delivered += delivered
        return delivered

    def _put(self, batch: Sequence[_PendingRecord]) -> None:
        """PutRecords with retries of only the failed entries; raises if Kinesis keeps refusing.

        A retried entry can land after a later record of the same order; consumers order one order's
        events by the DynamoDB sequence number inside the record, so that is harmless.
        """
        entries = [{"Data": record.data, "PartitionKey": record.partition_key} for record in batch]
        for chunk in put_records_chunks(entries):
            remaining = chunk
            for attempt in range(MAX_PUT_ATTEMPTS):
                response = self.kinesis.put_records(StreamName=self.settings.target_stream_name,
                                                    Records=remaining)
                self.stats.put_calls += 1
                if not response.get("FailedRecordCount"):
                    break
                failed = [entry for entry, result in zip(remaining, response["Records"], strict=True)
                          if result.get("ErrorCode")]
                codes = {result.get("ErrorCode") for result in response["Records"] if result.get("ErrorCode")}
                LOGGER.info("kinesis_put_partial_failure failed=%d codes=%s attempt=%d", len(failed),
                            sorted(codes), attempt + 1)
                self.stats.retried_entries += len(failed)
                remaining = failed
                time.sleep(min(1.0, 0.05 * 2**attempt))
            else:
                raise PipeError(f"Kinesis refused {len(remaining)} records {MAX_PUT_ATTEMPTS} times; "
                                "stopping without advancing the checkpoint")

    # -- the loop's view

    def poll(self, *, force: bool = False) -> int:
        """Read and dispatch what is due; ``force`` reads every shard now and sends every pending record.

        Returns records read: 0 with ``force`` means the stream had nothing new.
        """
        if not self.settings.running:
            return 0
        read = self.read(eager=force)
        self.dispatch(force=force)
        return read

    def caught_up(self) -> bool:
        """True when the last read of every open shard returned nothing: the stream is read to its end."""
        return all(cursor.caught_up or cursor.closed for cursor in self._cursors.values())

    @property
    def pending(self) -> int:
        return sum(len(cursor.pending) for cursor in self._cursors.values())

    def oldest_pending_age(self) -> float:
        now = time.monotonic()
        ages = [now - cursor.pending[0].received_at for cursor in self._cursors.values() if cursor.pending]
        return max(ages, default=0.0)

    def next_deadline(self) -> float | None:
        """Monotonic time at which a shard poll or a pending partial batch becomes due."""
        window = self.settings.batching_window_seconds
        times = [cursor.next_poll for cursor in self._cursors.values() if not cursor.closed]
        times += [cursor.pending[0].received_at + window
                  for cursor in self._cursors.values() if cursor.pending]
        return min(times, default=None)
