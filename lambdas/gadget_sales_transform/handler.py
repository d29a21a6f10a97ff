"""Firehose data-transformation Lambda ``gadget_sales_transform``.

Turns each Kinesis record (one DynamoDB stream record as EventBridge Pipes delivers it, JSON) into one
raw CDC line for S3 (DESIGN.md, "Record formats"). stdlib + boto3 only (the Lambda runtime's).

Output line (UTF-8, compact JSON, newline-terminated), keys in this order::

    event_id, event_name, event_ts, sequence_number, order_id, is_deleted, <the order's attributes...>

Rules (the tests in gadget_pipeline_tests/test_transform_handler.py pin every one of them):

* Image: INSERT/MODIFY take the attributes from ``NewImage`` (required); REMOVE takes them from
  ``OldImage``, or from ``Keys`` when the stream record carries no OldImage; ``is_deleted`` is true
  exactly for REMOVE.
* ``order_id`` comes from ``Keys`` (the table's partition key, a non-empty ``S``).
* ``event_ts``: ``ApproximateCreationDateTime`` (epoch seconds, int or float) rounded to the nearest
  millisecond, rendered in UTC as ``YYYY-MM-DDTHH:MM:SSZ`` when the millisecond part is zero and as
  ``YYYY-MM-DDTHH:MM:SS.mmmZ`` otherwise (AWS sends whole seconds, moto sends milliseconds).
* Attribute values are unmarshalled with boto3's ``TypeDeserializer`` (a strict subclass of it):
  N -> exact decimal text ``str(Decimal)`` of boto3's Decimal (DynamoDB's context: 38 significant
  digits, anything inexact or out of range is rejected; never a float). That keeps the text DynamoDB
  sent ("199.99" and "199.90" stay as given); only magnitudes below 1E-6 or text already in exponent
  form come out in exponent notation ("1E-7"), value unchanged. S -> string, B -> base64 text
  (canonical re-encoding of the bytes), BOOL -> true/false, NULL -> null, M -> object, L -> array,
  SS -> sorted array of strings, NS -> array of decimal texts sorted by numeric value,
  BS -> array of base64 texts sorted by their bytes.
* Reserved keys: the envelope wins. An image attribute named like an envelope key (``event_id``,
  ``event_name``, ``event_ts``, ``sequence_number``, ``order_id``, ``is_deleted``) never overwrites it;
  the attribute value is left out of the line (``order_id`` in the image is the key anyway).
* Results: ``Ok`` for a transformed record; ``ProcessingFailed`` (with the record's original ``data``
  echoed back unchanged, so Firehose writes the raw bytes to the error prefix) for anything that is not
  a well-formed DynamoDB stream record of this table. ``Dropped`` is never produced: every record on
  the stream is expected to be a CDC event, and anything else must stay visible under ``errors/``
  instead of vanishing silently (that includes an ``eventSource`` other than ``aws:dynamodb``).
  Reason codes (logged): bad_record (data not a string), bad_base64, not_utf8, not_json, not_object,
  not_stream_event (eventID/eventName/dynamodb missing), unknown_event_name, wrong_event_source
  (present and not aws:dynamodb), bad_sequence_number (not ASCII digits), bad_timestamp, missing_order_id,
  bad_order_id (not a non-empty S), missing_image (INSERT/MODIFY without NewImage), bad_typed_value,
  unencodable_text (lone surrogate), internal_error (a bug; logged with the exception type only).
* The handler never raises for anything inside ``records``; an event without a ``records`` list gives
  ``{"records": []}``. One structured JSON log line per invocation: invocationId, counts by result,
  counts by reason and (recordId, reason) per failure (first 100) -- never record contents.
"""

from __future__ import annotations

import binascii
import json
import json.encoder as _json_encoder
import logging
import os
from datetime import datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any

from boto3.dynamodb.types import DYNAMODB_CONTEXT, TypeDeserializer

__all__ = [
    "RecordError",
    "decode_record",
    "format_event_ts",
    "handler",
    "to_raw_line",
    "transform_record",
    "unmarshal_image",
]

LOGGER = logging.getLogger("gadget_sales_transform")
try:
    LOGGER.setLevel(os.environ.get("GADGET_TRANSFORM_LOG_LEVEL", "INFO").upper())
except ValueError:  # an unknown level name must not break the function's cold start
    LOGGER.setLevel(logging.INFO)

OK = "Ok"
DROPPED = "Dropped"
FAILED = "ProcessingFailed"

ENVELOPE_KEYS = ("event_id", "event_name", "event_ts", "sequence_number", "order_id", "is_deleted")
EVENT_NAMES = frozenset({"INSERT", "MODIFY", "REMOVE"})
EVENT_SOURCE = "aws:dynamodb"
MAX_LOGGED_FAILURES = 100

_TYPE_TAGS = frozenset({"S", "N", "B", "BOOL", "NULL", "M", "L", "SS", "NS", "BS"})
_EPOCH = datetime(1970, 1, 1)
_a2b = binascii.a2b_base64
_b2a = binascii.b2a_base64
_raw_decode = json.JSONDecoder().raw_decode
_create_decimal = DYNAMODB_CONTEXT.create_decimal  # boto3's: 38 digits, traps Inexact/Rounded/Overflow


class RecordError(Exception):
    """A record that cannot be transformed; ``reason`` is a short stable code for the logs."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _bad_value() -> RecordError:
    return RecordError("bad_typed_value")


class _StrictDeserializer(TypeDeserializer):
    """boto3's TypeDeserializer, made strict about shapes and returning JSON-ready values.

    boto3's ``deserialize`` accepts lower-case and multi-key type descriptors (it reads the first key
    and dispatches with ``getattr(self, "_deserialize_" + tag.lower())``), turns unparsable number text
    into NaN and expects raw bytes for B, while a stream record carries base64 text. Here:

    * dispatch is the same tag -> ``_deserialize_<tag>`` mapping, resolved once into a dict, and a
      typed value must be a dict with exactly one upper-case DynamoDB tag;
    * the per-type methods check the JSON type of their payload and keep boto3's conversions
      (``DYNAMODB_CONTEXT`` for N: 38 significant digits, Inexact/Rounded/Overflow/Underflow trap;
      ``Binary`` for B) but return JSON-ready values (decimal text, base64 text, sorted lists for
      sets), so the line is encoded by the C JSON encoder without a ``default=`` hook;
    * M and L inline the S case (boto3 returns the string itself), the bulk of an order's values.
    """

    def __init__(self) -> None:
        super().__init__()
        self._by_tag = {tag: getattr(self, f"_deserialize_{tag.lower()}") for tag in _TYPE_TAGS}

    def deserialize(self, value: Any) -> Any:
        ((tag, payload),) = value.items()  # not a dict: AttributeError; not exactly one key: ValueError
        return self._by_tag[tag](payload)  # unknown or lower-case tag: KeyError

    def _deserialize_s(self, value: Any) -> str:
        if type(value) is not str:
            raise _bad_value()
        return value

    def _deserialize_n(self, value: Any) -> str:
        if type(value) is not str:
            raise _bad_value()
        number = _create_decimal(value)  # the body of boto3's TypeDeserializer._deserialize_n
        if not number.is_finite():  # unparsable text comes back as NaN; "Infinity" is no DynamoDB number
            raise _bad_value()
        return str(number)

    def _deserialize_b(self, value: Any) -> str:
        if type(value) is not str:
            raise _bad_value()
        raw = _a2b(value, strict_mode=True)
        super()._deserialize_b(raw)  # boto3's Binary (type check of the bytes)
        return _b2a(raw, newline=False).decode("ascii")

    def _deserialize_bool(self, value: Any) -> bool:
        if type(value) is not bool:
            raise _bad_value()
        return value

    def _deserialize_null(self, value: Any) -> None:
        if value is not True:
            raise _bad_value()
        return None

    def _deserialize_ss(self, value: Any) -> list[str]:
        if type(value) is not list:
            raise _bad_value()
        return sorted(super()._deserialize_ss(value))

    def _deserialize_ns(self, value: Any) -> list[str]:
        if type(value) is not list:
            raise _bad_value()
        return sorted(super()._deserialize_ns(value), key=Decimal)

    def _deserialize_bs(self, value: Any) -> list[str]:
        if type(value) is not list:
            raise _bad_value()
        return sorted(super()._deserialize_bs(value), key=_a2b)

    def _deserialize_l(self, value: Any) -> list[Any]:
        if type(value) is not list:
            raise _bad_value()
        by_tag = self._by_tag
        out = []
        for typed in value:
            ((tag, payload),) = typed.items()
            out.append(payload if tag == "S" and type(payload) is str else by_tag[tag](payload))
        return out

    def _deserialize_m(self, value: Any) -> dict[str, Any]:
        if type(value) is not dict:
            raise _bad_value()
        by_tag = self._by_tag
        out = {}
        for name, typed in value.items():
            ((tag, payload),) = typed.items()
            if tag == "S" and type(payload) is str:
                out[name] = payload
            else:
                out[name] = by_tag[tag](payload)
        return out


_DESERIALIZER = _StrictDeserializer()
_ENCODE = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), allow_nan=False, check_circular=False
).encode
if _json_encoder.c_make_encoder is not None and _json_encoder.c_encode_basestring is not None:
    # What JSONEncoder.encode builds on every call (markers=None: no circular check), built once. Same
    # output as _ENCODE; saves ~1 us per record. Falls back to _ENCODE without the C accelerator.
    _C_ENCODE = _json_encoder.c_make_encoder(
        None, None, _json_encoder.c_encode_basestring, None, ":", ",", False, False, False
    )

    def _encode(obj: Any) -> str:
        return "".join(_C_ENCODE(obj, 0))

else:  # pragma: no cover - CPython always has the accelerator
    _encode = _ENCODE


def unmarshal_image(image: Any) -> dict[str, Any]:
    """A typed DynamoDB image (``{"attr": {"S": ...}, ...}``) -> JSON-ready dict (rules in module doc)."""
    try:
        return _DESERIALIZER._deserialize_m(image)
    except RecordError:
        raise
    except (TypeError, ValueError, AttributeError, LookupError, ArithmeticError, RecursionError):
        # boto3's own complaints (unknown type, Inexact/Overflow decimal, bad base64, unhashable set item)
        raise _bad_value() from None


@lru_cache(maxsize=4096)
def _iso_seconds(seconds: int) -> str:
    return (_EPOCH + timedelta(seconds=seconds)).isoformat()


def format_event_ts(value: Any) -> str:
    """Epoch seconds (int or float) -> ISO-8601 UTC, milliseconds only when they are non-zero."""
    if type(value) is int:
        millis = value * 1000
    elif type(value) is float:
        try:
            millis = round(value * 1000)
        except (ValueError, OverflowError):  # NaN, infinity
            raise RecordError("bad_timestamp") from None
    else:
        raise RecordError("bad_timestamp")
    seconds, fraction = divmod(millis, 1000)
    try:
        text = _iso_seconds(seconds)
    except OverflowError:  # outside datetime's years 1..9999
        raise RecordError("bad_timestamp") from None
    if fraction:
        return f"{text}.{fraction:03d}Z"
    return text + "Z"


def decode_record(data: Any) -> dict[str, Any]:
    """Firehose record ``data`` (base64 text) -> the DynamoDB stream record (a JSON object)."""
    if type(data) is not str:
        raise RecordError("bad_record")
    try:
        raw = _a2b(data, strict_mode=True)  # strict alphabet and padding, no embedded junk
    except (binascii.Error, ValueError):  # ValueError: non-ASCII text
        raise RecordError("bad_base64") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise RecordError("not_utf8") from None
    try:
        event, end = _raw_decode(text)  # json.loads minus its per-call overhead, for the common case
        if end != len(text):  # surrounding whitespace or trailing data: let json.loads decide
            event = json.loads(text)
    except (ValueError, RecursionError):
        try:
            event = json.loads(text)  # leading whitespace is fine for json.loads, not for raw_decode
        except (ValueError, RecursionError):
            raise RecordError("not_json") from None
    if type(event) is not dict:
        raise RecordError("not_object")
    return event


def to_raw_line(event: dict[str, Any]) -> bytes:
    """A DynamoDB stream record (as Pipes delivers it) -> one newline-terminated UTF-8 JSON line."""
    ddb = event.get("dynamodb")
    event_id = event.get("eventID")
    event_name = event.get("eventName")
    if type(ddb) is not dict or type(event_id) is not str or type(event_name) is not str:
        raise RecordError("not_stream_event")
    if event_name not in EVENT_NAMES:
        raise RecordError("unknown_event_name")
    if event.get("eventSource", EVENT_SOURCE) != EVENT_SOURCE:
        raise RecordError("wrong_event_source")
    sequence_number = ddb.get("SequenceNumber")
    if type(sequence_number) is not str or not (sequence_number.isascii() and sequence_number.isdigit()):
        raise RecordError("bad_sequence_number")
    event_ts = format_event_ts(ddb.get("ApproximateCreationDateTime"))

    keys = ddb.get("Keys")
    if type(keys) is not dict or "order_id" not in keys:
        raise RecordError("missing_order_id")
    key = keys["order_id"]
    if type(key) is not dict or len(key) != 1 or type(key.get("S")) is not str or not key["S"]:
        raise RecordError("bad_order_id")
    order_id = key["S"]

    is_deleted = event_name == "REMOVE"
    if is_deleted:
        image = ddb.get("OldImage")
        if image is None:
            image = keys
    else:
        image = ddb.get("NewImage")
        if image is None:
            raise RecordError("missing_image")
    attributes = unmarshal_image(image)

    envelope = {
        "event_id": event_id,
        "event_name": event_name,
        "event_ts": event_ts,
        "sequence_number": sequence_number,
        "order_id": order_id,
        "is_deleted": is_deleted,
    }
    # Envelope keys first, then the attributes; the trailing **envelope makes the envelope win.
    line = {**envelope, **attributes, **envelope}
    try:
        return (_encode(line) + "\n").encode("utf-8")
    except UnicodeEncodeError:  # lone surrogate from a JSON \ud800 escape: not DynamoDB text
        raise RecordError("unencodable_text") from None
    except RecursionError:  # nested far deeper than DynamoDB's 32 levels
        raise _bad_value() from None


def transform_record(record: Any) -> tuple[dict[str, str], str | None]:
    """One Firehose input record -> (output record, failure reason or None). Never raises."""
    if type(record) is not dict:
        return {"recordId": None, "result": FAILED, "data": ""}, "bad_record"
    record_id = record.get("recordId")
    data = record.get("data")
    try:
        line = to_raw_line(decode_record(data))
    except RecordError as error:
        reason = error.reason
    except Exception as error:  # noqa: BLE001 - one bad record must never fail the whole batch
        # the exception type only: a message or traceback could quote the record's contents
        LOGGER.error(
            json.dumps(
                {"msg": "transform_internal_error", "recordId": str(record_id), "error": type(error).__name__}
            )
        )
        reason = "internal_error"
    else:
        return {"recordId": record_id, "result": OK, "data": _b2a(line, newline=False).decode("ascii")}, None
    echoed = data if type(data) is str else ""
    return {"recordId": record_id, "result": FAILED, "data": echoed}, reason


def handler(event: Any, context: Any) -> dict[str, list[dict[str, str]]]:
    """Firehose data-transformation entry point."""
    records = event.get("records") if type(event) is dict else None
    invocation_id = event.get("invocationId") if type(event) is dict else None
    if type(records) is not list:
        LOGGER.warning(json.dumps({"msg": "transform_no_records", "invocationId": invocation_id}))
        return {"records": []}

    out: list[dict[str, str]] = []
    failures: list[dict[str, Any]] = []
    append = out.append
    for record in records:
        result, reason = transform_record(record)
        append(result)
        if reason is not None:
            failures.append({"recordId": result["recordId"], "reason": reason})

    _log_summary(invocation_id, len(out), failures)
    return {"records": out}


def _log_summary(invocation_id: Any, total: int, failures: list[dict[str, Any]]) -> None:
    by_reason: dict[str, int] = {}
    for failure in failures:
        by_reason[failure["reason"]] = by_reason.get(failure["reason"], 0) + 1
    summary = {
        "msg": "transform_summary",
        "invocationId": invocation_id,
        "records": total,
        "counts": {OK: total - len(failures), DROPPED: 0, FAILED: len(failures)},
        "failure_reasons": by_reason,
        "failures": failures[:MAX_LOGGED_FAILURES],
        "failures_truncated": max(0, len(failures) - MAX_LOGGED_FAILURES),
    }
    LOGGER.log(logging.WARNING if failures else logging.INFO, json.dumps(summary, default=str))
