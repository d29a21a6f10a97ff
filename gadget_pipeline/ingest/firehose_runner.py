"""Local Firehose runtime: Kinesis -> buffer -> the transform Lambda (in-process) -> S3.

Every setting is read back from ``firehose.describe_delivery_stream``: source stream, bucket, Prefix and
ErrorOutputPrefix, BufferingHints, CompressionFormat and the Lambda processor (its ARN names the function;
``lambda.get_function_configuration`` gives the ``Handler`` to load from ``lambdas/``).

What AWS does, and so this does:
* one S3 object per buffer flush, named ``<prefix><stream>-<version>-YYYY-MM-DD-HH-MM-SS-<uuid4>``
  (``.gz`` when GZIP); the timestamp and ``!{timestamp:...}`` in prefixes come from the approximate
  arrival time of the buffer's first record, in UTC;
* the Lambda response is checked: every recordId exactly once, result Ok|Dropped|ProcessingFailed;
  anything else fails the whole invocation, which is retried NumberOfRetries times;
* ProcessingFailed records and records of failed invocations go to the error prefix
  (``!{firehose:error-output-type}`` = ``processing-failed``) as Firehose error-record JSON lines;
  Dropped records vanish.
Delivery is at-least-once: shard checkpoints advance only after the S3 writes succeeded.

Two deliberate differences from AWS: with no checkpoint the runner starts at TRIM_HORIZON (on AWS the
delivery stream starts reading at creation, which a local runner started later can only match by
reading from the start); and the processor's own BufferIntervalInSeconds is not modelled (records are
transformed when the destination buffer flushes, in invocations of at most its BufferSizeInMBs).
"""

from __future__ import annotations

import base64
import binascii
import gzip
import importlib.util
import json
import logging
import math
import re
import secrets
import string
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

from gadget_pipeline import config
from gadget_pipeline.aws import AwsTarget
from gadget_pipeline.ingest.checkpoint import CheckpointStore
from gadget_pipeline.ingest.shards import get_records_renewing, readable_shards, sequence_key

LOGGER = logging.getLogger(__name__)

CHECKPOINT_FILE = "firehose-checkpoints.json"
MIB = 1024 * 1024
KINESIS_READ_LIMIT = 10000  # GetRecords maximum
SHARD_REFRESH_SECONDS = 10.0
# Kinesis allows five GetRecords calls per shard and second; an idle shard is polled at that pace.
SHARD_POLL_INTERVAL_SECONDS = 0.2
# A synchronous Lambda payload is at most 6 MB; base64 grows data by 4/3, so cap one invocation's input.
MAX_INVOKE_BYTES = 4 * MIB
DEFAULT_PROCESSOR_BUFFER_MB = 1.0
DEFAULT_LAMBDA_RETRIES = 3
PROCESSING_FAILED = "processing-failed"
RESULTS = frozenset({"Ok", "Dropped", "ProcessingFailed"})
FUNCTION_ERROR_MESSAGE = "The Lambda function was successfully invoked but it returned an error result."
PROCESSING_FAILED_MESSAGE = "The Lambda function returned ProcessingFailed for this record."


class FirehoseError(RuntimeError):
    """The delivery stream has a setting this runtime cannot honour."""


# --------------------------------------------------------------------------- prefixes and object names

_EXPRESSION = re.compile(r"!\{([^}]*)\}")
_TIMESTAMP_TOKEN = re.compile(r"yyyy|yy|MM|dd|HH|mm|ss|[A-Za-z]+|[^A-Za-z]+")
_TIMESTAMP_FIELDS = {"yyyy": "%Y", "yy": "%y", "MM": "%m", "dd": "%d", "HH": "%H", "mm": "%M", "ss": "%S"}
_RANDOM_ALPHABET = string.ascii_letters + string.digits


def format_timestamp(pattern: str, moment: datetime) -> str:
    """The subset of Java DateTimeFormatter that Firehose prefixes use (yyyy, yy, MM, dd, HH, mm, ss)."""
    parts = []
    for token in _TIMESTAMP_TOKEN.findall(pattern):
        if token in _TIMESTAMP_FIELDS:
            parts.append(moment.strftime(_TIMESTAMP_FIELDS[token]))
        elif token[0].isalpha():
            raise FirehoseError(f"unsupported timestamp pattern {token!r} in !{{timestamp:{pattern}}}")
        else:
            parts.append(token)
    return "".join(parts)


def expand_prefix(
    template: str,
    arrival: datetime,
    *,
    error_output_type: str | None = None,
    random_string: Callable[[], str] | None = None,
) -> str:
    """Expand Firehose's prefix namespaces; ``arrival`` must be UTC.

    ``!{timestamp:<pattern>}`` and ``!{firehose:random-string}`` everywhere,
    ``!{firehose:error-output-type}`` only in the error prefix (``error_output_type`` given). A prefix
    without any expression gets Firehose's default ``YYYY/MM/dd/HH/`` time path appended.
    """
    if arrival.utcoffset() != UTC.utcoffset(None):
        raise ValueError("arrival must be a UTC datetime")
    random_string = random_string or (lambda: "".join(secrets.choice(_RANDOM_ALPHABET) for _ in range(11)))

    def replace(match: re.Match[str]) -> str:
        namespace, _, argument = match.group(1).partition(":")
        if namespace == "timestamp" and argument:
            return format_timestamp(argument, arrival)
        if namespace == "firehose" and argument == "random-string":
            return random_string()
        if namespace == "firehose" and argument == "error-output-type":
            if error_output_type is None:
                raise FirehoseError("!{firehose:error-output-type} is only valid in ErrorOutputPrefix")
            return error_output_type
        raise FirehoseError(f"unsupported prefix expression {match.group(0)!r} in {template!r}")

    if not _EXPRESSION.search(template):
        default = arrival.strftime("%Y/%m/%d/%H/")
        if error_output_type is not None and not template:
            return f"{error_output_type}/{default}"
        return template + default
    return _EXPRESSION.sub(replace, template)


def object_key(prefix: str, stream_name: str, version_id: str, arrival: datetime, *, gzip_compressed: bool,
               unique: str | None = None) -> str:
    """Firehose's object name: ``<prefix><DeliveryStreamName>-<version>-YYYY-MM-DD-HH-MM-SS-<uuid4>[.gz]``."""
    stamp = arrival.strftime("%Y-%m-%d-%H-%M-%S")
    suffix = ".gz" if gzip_compressed else ""
    return f"{prefix}{stream_name}-{version_id}-{stamp}-{unique or uuid.uuid4()}{suffix}"


# --------------------------------------------------------------------------- the Lambda contract


class InvalidTransformOutput(Exception):  # noqa: N818 - named after what Firehose reports
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class TransformedRecord:
    result: str  # Ok | Dropped | ProcessingFailed
    data: bytes  # decoded transform output (Ok only)


def validate_transform_response(response: Any, record_ids: Sequence[str]) -> dict[str, TransformedRecord]:
    """Check a Lambda response against the Firehose contract; any violation fails the whole batch."""
    if not isinstance(response, Mapping) or not isinstance(response.get("records"), list):
        raise InvalidTransformOutput("Lambda.JsonProcessingException",
                                     "The response is not an object with a records array.")
    expected = set(record_ids)
    results: dict[str, TransformedRecord] = {}
    for entry in response["records"]:
        record_id = entry.get("recordId") if isinstance(entry, Mapping) else None
        if not isinstance(record_id, str) or record_id not in expected:
            raise InvalidTransformOutput("Lambda.JsonProcessingException",
                                         f"The response has a record with an unknown recordId {record_id!r}.")
        if record_id in results:
            raise InvalidTransformOutput("Lambda.DuplicatedRecordId",
                                         f"Multiple records were returned with the recordId {record_id}.")
        result = entry.get("result")
        if result not in RESULTS:
            raise InvalidTransformOutput("Lambda.JsonProcessingException",
                                         f"Record {record_id} has an invalid result {result!r}.")
        data = b""
        if result == "Ok":
            encoded = entry.get("data")
            try:
                if not isinstance(encoded, str):
                    raise ValueError
                data = base64.b64decode(encoded, validate=True)
            except (ValueError, binascii.Error):
                raise InvalidTransformOutput("Lambda.JsonProcessingException",
                                             f"Record {record_id} has data that is not base64.") from None
        results[record_id] = TransformedRecord(result, data)
    missing = expected - results.keys()
    if missing:
        raise InvalidTransformOutput("Lambda.MissingRecordId",
                                     f"{len(missing)} recordIds were not returned, e.g. {min(missing)}.")
    return results


@dataclass
class LocalLambdaContext:
    """The parts of the Lambda context object a handler may use."""

    function_name: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    timeout_seconds: float
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = ""
    log_stream_name: str = "local"
    _deadline: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_seconds
        self.log_group_name = self.log_group_name or f"/aws/lambda/{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


Handler = Callable[[dict[str, Any], Any], Any]
_LOADED_HANDLERS: dict[Path, ModuleType] = {}


def load_handler_module(path: Path) -> ModuleType:
    """Import a handler file by path once (under a private module name, not the lambda's own)."""
    path = path.resolve()
    if path not in _LOADED_HANDLERS:
        if not path.is_file():
            raise FirehoseError(f"Lambda handler source {path} does not exist")
        name = f"_gadget_local_lambda_{abs(hash(path)):x}"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        _LOADED_HANDLERS[path] = module
    return _LOADED_HANDLERS[path]


@dataclass(frozen=True)
class LocalFunction:
    arn: str
    name: str
    handler: Handler
    memory_mb: int
    timeout_seconds: float

    def context(self) -> LocalLambdaContext:
        return LocalLambdaContext(self.name, self.arn, self.memory_mb, self.timeout_seconds)


def load_function(target: AwsTarget, function_arn: str,
                  source_dir: Path = config.LAMBDA_SOURCE_DIR) -> LocalFunction:
    """The deployed function's ``Handler`` ("module.function"), loaded from the repository's lambda code."""
    configuration = target.client("lambda").get_function_configuration(FunctionName=function_arn)
    module_name, _, function_name = configuration["Handler"].rpartition(".")
    if not module_name or not function_name:
        raise FirehoseError(f"Lambda {configuration['FunctionName']}: bad Handler "
                            f"{configuration['Handler']!r}")
    module = load_handler_module(source_dir / (module_name.replace(".", "/") + ".py"))
    handler = getattr(module, function_name, None)
    if not callable(handler):
        raise FirehoseError(f"{module.__file__} has no function {function_name!r}")
    return LocalFunction(configuration["FunctionArn"], configuration["FunctionName"], handler,
                         int(configuration.get("MemorySize", 128)), float(configuration.get("Timeout", 3)))


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class FirehoseSettings:
    name: str
    arn: str
    version_id: str
    created: str
    source_stream_arn: str
    source_stream_name: str
    bucket: str
    prefix: str
    error_prefix: str
    buffer_bytes: int
    buffer_interval_seconds: float
    gzip: bool
    lambda_arn: str | None
    lambda_retries: int
    invoke_bytes: int

    @classmethod
    def from_description(cls, description: Mapping[str, Any]) -> FirehoseSettings:
        name = description["DeliveryStreamName"]
        source = description.get("Source", {}).get("KinesisStreamSourceDescription", {})
        if not source.get("KinesisStreamARN"):
            raise FirehoseError(f"delivery stream {name} has no Kinesis stream source (needed locally)")
        destinations = description.get("Destinations", [])
        destination = destinations[0].get("ExtendedS3DestinationDescription") if destinations else None
        if destination is None:
            raise FirehoseError(f"delivery stream {name} has no extended S3 destination")
        compression = destination.get("CompressionFormat", "UNCOMPRESSED")
        if compression not in ("UNCOMPRESSED", "GZIP"):
            raise FirehoseError(f"delivery stream {name}: CompressionFormat {compression} is not supported "
                                "locally")
        hints = destination.get("BufferingHints", {})
        lambda_arn, retries, invoke_mb = _lambda_processor(destination.get("ProcessingConfiguration", {}))
        settings = cls(
            name=name,
            arn=description["DeliveryStreamARN"],
            version_id=str(description.get("VersionId", "1")),
            created=str(description.get("CreateTimestamp", "")),
            source_stream_arn=source["KinesisStreamARN"],
            source_stream_name=source["KinesisStreamARN"].split(":stream/", 1)[1],
            bucket=destination["BucketARN"].split(":::", 1)[1],
            prefix=destination.get("Prefix", ""),
            error_prefix=destination.get("ErrorOutputPrefix", ""),
            buffer_bytes=int(float(hints.get("SizeInMBs", 5)) * MIB),
            buffer_interval_seconds=float(hints.get("IntervalInSeconds", 300)),
            gzip=compression == "GZIP",
            lambda_arn=lambda_arn,
            lambda_retries=retries,
            invoke_bytes=min(MAX_INVOKE_BYTES, int(invoke_mb * MIB)),
        )
        # Fail at start-up, not at the first flush, on a prefix this runtime cannot expand.
        probe = datetime(2000, 1, 1, tzinfo=UTC)
        expand_prefix(settings.prefix, probe)
        expand_prefix(settings.error_prefix, probe, error_output_type=PROCESSING_FAILED)
        return settings


def _lambda_processor(processing: Mapping[str, Any]) -> tuple[str | None, int, float]:
    if not processing.get("Enabled"):
        return None, 0, DEFAULT_PROCESSOR_BUFFER_MB
    processors = processing.get("Processors", [])
    lambdas = [processor for processor in processors if processor.get("Type") == "Lambda"]
    if len(lambdas) != 1 or len(processors) != 1:
        raise FirehoseError("only a single Lambda processor is supported locally")
    parameters = {item["ParameterName"]: item["ParameterValue"] for item in lambdas[0].get("Parameters", [])}
    if "LambdaArn" not in parameters:
        raise FirehoseError("the Lambda processor has no LambdaArn")
    return (
        parameters["LambdaArn"],
        int(parameters.get("NumberOfRetries", DEFAULT_LAMBDA_RETRIES)),
        float(parameters.get("BufferSizeInMBs", DEFAULT_PROCESSOR_BUFFER_MB)),
    )


def load_firehose_settings(target: AwsTarget, delivery_stream_name: str) -> FirehoseSettings:
    response = target.client("firehose").describe_delivery_stream(DeliveryStreamName=delivery_stream_name)
    return FirehoseSettings.from_description(response["DeliveryStreamDescription"])


# --------------------------------------------------------------------------- the runner


@dataclass(frozen=True)
class BufferedRecord:
    shard_id: str
    sequence_number: str
    partition_key: str
    data: bytes
    arrival_ms: int  # Kinesis ApproximateArrivalTimestamp

    @property
    def record_id(self) -> str:
        # Unique within a delivery stream even where moto's per-shard sequence numbers repeat across shards.
        return f"{self.shard_id}:{self.sequence_number}"


@dataclass
class _ShardCursor:
    shard_id: str
    iterator: str | None = None
    last_read: str | None = None
    closed: bool = False
    caught_up: bool = False  # the last GetRecords returned nothing
    next_poll: float = 0.0  # monotonic time before which an idle shard is not read again


@dataclass
class FirehoseStats:
    read: int = 0
    delivered: int = 0  # Ok records written to the destination prefix
    failed: int = 0  # records written to the error prefix
    dropped: int = 0
    objects: int = 0
    error_objects: int = 0
    invocations: int = 0
    failed_invocations: int = 0


@dataclass
class FlushResult:
    keys: list[str]
    delivered: int
    failed: int
    dropped: int
    written_at: float  # wall time the last S3 write completed


class FirehoseRunner:
    """Moves Kinesis records through the transform into S3 objects. Call ``poll`` in a loop."""

    def __init__(self, target: AwsTarget, settings: FirehoseSettings, *, state_dir: Path | None = None,
                 function: LocalFunction | None = None) -> None:
        self.target = target
        self.settings = settings
        self.kinesis = target.client("kinesis")
        self.s3 = target.client("s3")
        if function is None and settings.lambda_arn is not None:
            function = load_function(target, settings.lambda_arn)
        self.function = function
        created = self.kinesis.describe_stream_summary(StreamName=settings.source_stream_name)
        stream_created = created["StreamDescriptionSummary"]["StreamCreationTimestamp"]
        # Kinesis ARNs repeat when a stream is re-created; its creation time tells the generations apart.
        scope = f"{settings.arn}@{settings.created}|{settings.source_stream_arn}@{stream_created.isoformat()}"
        self.checkpoints = CheckpointStore((state_dir or config.state_dir()) / CHECKPOINT_FILE, scope)
        self.stats = FirehoseStats()
        self.on_flush: Callable[[FlushResult, Sequence[BufferedRecord]], None] | None = None
        self._cursors: dict[str, _ShardCursor] = {}
        self._shards: list[dict[str, Any]] = []
        self._shards_listed_at = -math.inf
        self._buffer: list[BufferedRecord] = []
        self._buffer_bytes = 0
        self._buffer_started = 0.0

    @classmethod
    def for_delivery_stream(cls, target: AwsTarget, name: str, *,
                            state_dir: Path | None = None) -> FirehoseRunner:
        return cls(target, load_firehose_settings(target, name), state_dir=state_dir)

    # -- reading

    def _list_shards(self) -> list[dict[str, Any]]:
        now = time.monotonic()
        if now - self._shards_listed_at >= SHARD_REFRESH_SECONDS:
            shards: list[dict[str, Any]] = []
            request: dict[str, Any] = {"StreamName": self.settings.source_stream_name}
            while True:
                response = self.kinesis.list_shards(**request)
                shards.extend(response.get("Shards", []))
                if not response.get("NextToken"):
                    break
                request = {"NextToken": response["NextToken"]}
            self._shards, self._shards_listed_at = shards, now
        return self._shards

    def _iterator(self, cursor: _ShardCursor) -> str:
        resume_after = cursor.last_read or self.checkpoints.sequence_number(cursor.shard_id)
        request: dict[str, Any] = {"StreamName": self.settings.source_stream_name, "ShardId": cursor.shard_id}
        if resume_after is not None:
            request.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=resume_after)
        else:
            request["ShardIteratorType"] = "TRIM_HORIZON"
        return self.kinesis.get_shard_iterator(**request)["ShardIterator"]

    def _read_shard(self, cursor: _ShardCursor, *, eager: bool) -> int:
        if cursor.closed or (not eager and time.monotonic() < cursor.next_poll):
            return 0
        if cursor.iterator is None:
            cursor.iterator = self._iterator(cursor)
        response, cursor.iterator = get_records_renewing(
            self.kinesis, cursor.iterator, KINESIS_READ_LIMIT, lambda: self._iterator(cursor)
        )
        records = response.get("Records", [])
        cursor.iterator = response.get("NextShardIterator")
        cursor.closed = cursor.iterator is None
        cursor.caught_up = not records
        now = time.monotonic()
        cursor.next_poll = now if len(records) >= KINESIS_READ_LIMIT else now + SHARD_POLL_INTERVAL_SECONDS
        for record in records:
            arrival_ms = round(record["ApproximateArrivalTimestamp"].timestamp() * 1000)
            self._append(BufferedRecord(cursor.shard_id, record["SequenceNumber"], record["PartitionKey"],
                                        record["Data"], arrival_ms))
            cursor.last_read = record["SequenceNumber"]
        self.stats.read += len(records)
        return len(records)

    def _append(self, record: BufferedRecord) -> None:
        if not self._buffer:
            self._buffer_started = time.monotonic()
        self._buffer.append(record)
        self._buffer_bytes += len(record.data)
        if self._buffer_bytes >= self.settings.buffer_bytes:
            self.flush()

    def read(self, *, eager: bool = False) -> int:
        """One GetRecords call per readable shard that is due (every one when ``eager``); records read."""
        shards = self._list_shards()
        for shard in shards:
            self._cursors.setdefault(shard["ShardId"], _ShardCursor(shard["ShardId"]))
        total = 0
        for shard_id in readable_shards(shards, self.checkpoints.is_finished):
            total += self._read_shard(self._cursors[shard_id], eager=eager)
        return total

    def caught_up(self) -> bool:
        """True when the last read of every open shard returned nothing: the stream is read to its end."""
        return all(cursor.caught_up or cursor.closed for cursor in self._cursors.values())

    def poll(self, *, eager: bool = False) -> int:
        """Read the shards that are due (all when ``eager``), then flush if the buffer interval passed."""
        read = self.read(eager=eager)
        if self._buffer and time.monotonic() - self._buffer_started >= self.settings.buffer_interval_seconds:
            self.flush()
        self._finish_closed_shards()
        return read

    def _finish_closed_shards(self) -> None:
        """Mark closed shards with nothing left in the buffer finished, so their children get read."""
        closed = [cursor.shard_id for cursor in self._cursors.values()
                  if cursor.closed and not self.checkpoints.is_finished(cursor.shard_id)]
        if closed:
            buffered = {record.shard_id for record in self._buffer}
            self.checkpoints.commit({}, {shard for shard in closed if shard not in buffered})

    # -- transforming

    def _invoke(
        self, records: Sequence[BufferedRecord]
    ) -> tuple[dict[str, TransformedRecord] | None, str, str, int]:
        """Invoke the handler with retries. Returns (results or None, error code, message, attempts)."""
        assert self.function is not None
        event = {
            "invocationId": str(uuid.uuid4()),
            "deliveryStreamArn": self.settings.arn,
            "sourceKinesisStreamArn": self.settings.source_stream_arn,
            "region": self.target.region,
            "records": [
                {
                    "recordId": record.record_id,
                    "approximateArrivalTimestamp": record.arrival_ms,
                    "data": base64.b64encode(record.data).decode("ascii"),
                    "kinesisRecordMetadata": {
                        "shardId": record.shard_id,
                        "partitionKey": record.partition_key,
                        "approximateArrivalTimestamp": record.arrival_ms,
                        "sequenceNumber": record.sequence_number,
                        "subsequenceNumber": 0,
                    },
                }
                for record in records
            ],
        }
        record_ids = [record.record_id for record in records]
        code, message = "", ""
        attempts = 0
        for attempt in range(self.settings.lambda_retries + 1):
            attempts = attempt + 1
            self.stats.invocations += 1
            try:
                response = self.function.handler(event, self.function.context())
            except Exception as error:  # noqa: BLE001 - any handler exception is a failed invocation
                code, message = "Lambda.FunctionError", f"{FUNCTION_ERROR_MESSAGE} ({type(error).__name__})"
                LOGGER.warning("lambda_invocation_failed code=%s error=%s attempt=%d", code,
                               type(error).__name__, attempts)
                continue
            try:
                return validate_transform_response(response, record_ids), "", "", attempts
            except InvalidTransformOutput as invalid:
                code, message = invalid.code, invalid.message
                LOGGER.warning("lambda_invalid_output code=%s attempt=%d", code, attempts)
        self.stats.failed_invocations += 1
        return None, code, message, attempts

    def _invocation_batches(self, records: Sequence[BufferedRecord]) -> list[Sequence[BufferedRecord]]:
        batches: list[Sequence[BufferedRecord]] = []
        start, size = 0, 0
        for index, record in enumerate(records):
            if index > start and size + len(record.data) > self.settings.invoke_bytes:
                batches.append(records[start:index])
                start, size = index, 0
            size += len(record.data)
        if start < len(records):
            batches.append(records[start:])
        return batches

    def _error_line(self, record: BufferedRecord, code: str, message: str, attempts: int,
                    ended_ms: int) -> bytes:
        error = {
            "attemptsMade": attempts,
            "arrivalTimestamp": record.arrival_ms,
            "errorCode": code,
            "errorMessage": message,
            "attemptEndingTimestamp": ended_ms,
            "rawData": base64.b64encode(record.data).decode("ascii"),
            "lambdaArn": self.settings.lambda_arn,
        }
        return json.dumps(error, separators=(",", ":")).encode("utf-8") + b"\n"

    def transform(self, records: Sequence[BufferedRecord]) -> tuple[list[bytes], list[bytes], int]:
        """Records -> (Ok outputs, error lines, dropped count), invoking the Lambda per size-capped batch."""
        if self.function is None:
            return [record.data for record in records], [], 0
        outputs: list[bytes] = []
        errors: list[bytes] = []
        dropped = 0
        for batch in self._invocation_batches(records):
            results, code, message, attempts = self._invoke(batch)
            ended_ms = int(time.time() * 1000)
            for record in batch:
                result = results[record.record_id] if results is not None else None
                if result is None:
                    errors.append(self._error_line(record, code, message, attempts, ended_ms))
                elif result.result == "Ok":
                    outputs.append(result.data)
                elif result.result == "Dropped":
                    dropped += 1
                else:
                    errors.append(self._error_line(record, "Lambda.ProcessingFailed",
                                                   PROCESSING_FAILED_MESSAGE, attempts, ended_ms))
        return outputs, errors, dropped

    # -- writing

    def put_object(self, key: str, body: bytes) -> None:
        """The S3 write (a seam for crash tests)."""
        self.s3.put_object(Bucket=self.settings.bucket, Key=key, Body=body)

    def _write(self, prefix_template: str, lines: list[bytes], arrival: datetime, *,
               error_output_type: str | None = None) -> str:
        prefix = expand_prefix(prefix_template, arrival, error_output_type=error_output_type)
        key = object_key(prefix, self.settings.name, self.settings.version_id, arrival,
                         gzip_compressed=self.settings.gzip)
        body = b"".join(lines)
        self.put_object(key, gzip.compress(body, mtime=0) if self.settings.gzip else body)
        return key

    def flush(self) -> FlushResult | None:
        """Transform and write the whole buffer, then advance the checkpoints of the shards in it.

        If this raises, the runner must be discarded: a new one resumes from the checkpoints, so the
        buffer is delivered again (at-least-once; the copies carry the same event ids).
        """
        if not self._buffer:
            return None
        records = self._buffer
        result = self._deliver(records)
        self._buffer, self._buffer_bytes = [], 0
        positions: dict[str, str] = {}
        for record in records:
            current = positions.get(record.shard_id)
            if current is None or sequence_key(record.sequence_number) > sequence_key(current):
                positions[record.shard_id] = record.sequence_number
        finished = {shard for shard in positions if self._cursors.get(shard, _ShardCursor(shard)).closed}
        self.checkpoints.commit(positions, finished)
        if self.on_flush is not None:
            self.on_flush(result, records)
        return result

    def _deliver(self, records: list[BufferedRecord]) -> FlushResult:
        arrival = datetime.fromtimestamp(records[0].arrival_ms / 1000, UTC)
        outputs, errors, dropped = self.transform(records)
        keys = []
        if outputs:
            keys.append(self._write(self.settings.prefix, outputs, arrival))
            self.stats.objects += 1
        if errors:
            keys.append(self._write(self.settings.error_prefix, errors, arrival,
                                    error_output_type=PROCESSING_FAILED))
            self.stats.error_objects += 1
        self.stats.delivered += len(outputs)
        self.stats.failed += len(errors)
        self.stats.dropped += dropped
        LOGGER.info("firehose_flush records=%d ok=%d failed=%d dropped=%d objects=%d", len(records),
                    len(outputs), len(errors), dropped, len(keys))
        return FlushResult(keys, len(outputs), len(errors), dropped, time.time())

    # -- the loop's view

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def oldest_buffered_age(self) -> float:
        return time.monotonic() - self._buffer_started if self._buffer else 0.0

    def next_deadline(self) -> float | None:
        """Monotonic time at which a shard poll or the buffer flush becomes due."""
        times = [cursor.next_poll for cursor in self._cursors.values() if not cursor.closed]
        if self._buffer:
            times.append(self._buffer_started + self.settings.buffer_interval_seconds)
        return min(times, default=None)
