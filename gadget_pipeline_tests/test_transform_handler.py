"""Tests of the Firehose transformation Lambda lambdas/gadget_sales_transform/handler.py.

Unit tests pin the raw-line format (DESIGN.md "Record formats") and the handler's documented rules
(timestamp, reserved keys, failures); hypothesis properties check that the Firehose response contract
holds for arbitrary input and that valid stream records round-trip exactly.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import logging
import re
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from boto3.dynamodb.types import Binary, TypeDeserializer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

HANDLER_PATH = Path(__file__).resolve().parents[1] / "lambdas" / "gadget_sales_transform" / "handler.py"


def _load_handler_module() -> Any:
    name = "gadget_sales_transform_handler_under_test"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, HANDLER_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


transform = _load_handler_module()

ENVELOPE_KEYS = ["event_id", "event_name", "event_ts", "sequence_number", "order_id", "is_deleted"]
RESULTS = {"Ok", "Dropped", "ProcessingFailed"}
HYPOTHESIS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TS = 1795256130  # 2026-11-21T10:15:30Z


# --------------------------------------------------------------------------- builders
def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def encode_json(obj: Any) -> str:
    return b64(json.dumps(obj).encode("utf-8"))


def order_image(order_id: str = "ord-1", **extra: dict) -> dict:
    image = {
        "order_id": {"S": order_id},
        "customer_id": {"S": "cust-000042"},
        "product": {"S": "Pixel 9 Pro"},
        "quantity": {"N": "2"},
        "unit_price": {"N": "199.99"},
        "total": {"N": "399.98"},
        "status": {"S": "PAID"},
    }
    image.update(extra)
    return image


def stream_record(
    event_name: str = "INSERT",
    *,
    new: dict | None = None,
    old: dict | None = None,
    keys: dict | None = None,
    seq: Any = "4960000000000000000000001",
    ts: Any = TS,
    event_id: Any = "e0c4b1f5a0d3e2f1",
    order_id: str = "ord-1",
) -> dict:
    if new is None and old is None and event_name in ("INSERT", "MODIFY"):
        new = order_image(order_id)
    ddb: dict[str, Any] = {
        "ApproximateCreationDateTime": ts,
        "Keys": keys if keys is not None else {"order_id": {"S": order_id}},
        "SequenceNumber": seq,
        "SizeBytes": 321,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    if new is not None:
        ddb["NewImage"] = new
    if old is not None:
        ddb["OldImage"] = old
    return {
        "eventID": event_id,
        "eventName": event_name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "eu-central-1",
        "dynamodb": ddb,
        "eventSourceARN": "arn:aws:dynamodb:eu-central-1:123456789012:table/Gadget_Orders/stream/x",
    }


def firehose_event(datas: list[Any]) -> dict:
    return {
        "invocationId": "inv-0001",
        "deliveryStreamArn": "arn:aws:firehose:eu-central-1:123456789012:deliverystream/"
        + "kinesis-gadget-data-s3",
        "sourceKinesisStreamArn": "arn:aws:kinesis:eu-central-1:123456789012:stream/gadget_sales_cdc",
        "region": "eu-central-1",
        "records": [
            {
                "recordId": f"rec-{i:04d}",
                "approximateArrivalTimestamp": TS * 1000,
                "data": data,
                "kinesisRecordMetadata": {
                    "shardId": "shardId-000000000000",
                    "partitionKey": "ord-1",
                    "sequenceNumber": str(i),
                    "subsequenceNumber": 0,
                    "approximateArrivalTimestamp": TS * 1000,
                },
            }
            for i, data in enumerate(datas)
        ],
    }


def run(datas: list[Any]) -> list[dict]:
    event = firehose_event(datas)
    response = transform.handler(event, None)
    assert_contract(event, response)
    return response["records"]


def decode_line(record: dict) -> dict:
    assert record["result"] == "Ok"
    text = base64.b64decode(record["data"], validate=True).decode("utf-8")
    assert text.endswith("\n") and text.count("\n") == 1, text
    return json.loads(text)


def transform_one(stream: dict) -> dict:
    (record,) = run([encode_json(stream)])
    return decode_line(record)


def assert_contract(event: dict, response: Any, *, valid_input_base64: bool = False) -> None:
    """The Firehose response contract: same recordIds in order, known results, base64 data, one line."""
    assert isinstance(response, dict) and list(response) == ["records"]
    json.dumps(response)  # the Lambda runtime must be able to serialise it
    out = response["records"]
    assert [r["recordId"] for r in out] == [r["recordId"] for r in event["records"]]
    for inp, rec in zip(event["records"], out, strict=True):
        assert set(rec) == {"recordId", "result", "data"}
        assert rec["result"] in RESULTS
        assert isinstance(rec["data"], str)
        if rec["result"] == "Ok":
            line = decode_line(rec)
            assert list(line)[:6] == ENVELOPE_KEYS
        else:
            assert rec["data"] == inp["data"]  # original bytes echoed back unchanged
        if valid_input_base64 or rec["result"] == "Ok":
            base64.b64decode(rec["data"], validate=True)


# --------------------------------------------------------------------------- INSERT / MODIFY / REMOVE
def test_insert_every_field():
    line = transform_one(stream_record("INSERT", seq="4960000000000000000000001"))
    assert line == {
        "event_id": "e0c4b1f5a0d3e2f1",
        "event_name": "INSERT",
        "event_ts": "2026-11-21T10:15:30Z",
        "sequence_number": "4960000000000000000000001",
        "order_id": "ord-1",
        "is_deleted": False,
        "customer_id": "cust-000042",
        "product": "Pixel 9 Pro",
        "quantity": "2",
        "unit_price": "199.99",
        "total": "399.98",
        "status": "PAID",
    }
    assert list(line)[:6] == ENVELOPE_KEYS


def test_modify_takes_new_image_only():
    old = order_image(status={"S": "PENDING"}, coupon={"S": "WELCOME10"})
    new = order_image(status={"S": "SHIPPED"}, tracking={"S": "1Z999"})
    line = transform_one(stream_record("MODIFY", new=new, old=old, seq="77", ts=TS + 1))
    assert line["event_name"] == "MODIFY"
    assert line["is_deleted"] is False
    assert line["event_ts"] == "2026-11-21T10:15:31Z"
    assert line["sequence_number"] == "77"
    assert line["status"] == "SHIPPED"
    assert line["tracking"] == "1Z999"
    assert "coupon" not in line  # nothing of the OldImage leaks


def test_remove_takes_old_image():
    old = order_image(status={"S": "CANCELLED"})
    line = transform_one(stream_record("REMOVE", old=old, seq="99"))
    assert line == {
        "event_id": "e0c4b1f5a0d3e2f1",
        "event_name": "REMOVE",
        "event_ts": "2026-11-21T10:15:30Z",
        "sequence_number": "99",
        "order_id": "ord-1",
        "is_deleted": True,
        "customer_id": "cust-000042",
        "product": "Pixel 9 Pro",
        "quantity": "2",
        "unit_price": "199.99",
        "total": "399.98",
        "status": "CANCELLED",
    }


def test_remove_with_keys_only():
    line = transform_one(stream_record("REMOVE", order_id="ord-gone", seq="100"))
    assert line == {
        "event_id": "e0c4b1f5a0d3e2f1",
        "event_name": "REMOVE",
        "event_ts": "2026-11-21T10:15:30Z",
        "sequence_number": "100",
        "order_id": "ord-gone",
        "is_deleted": True,
    }


def test_order_id_comes_from_keys():
    line = transform_one(
        stream_record("INSERT", new=order_image("ord-image"), keys={"order_id": {"S": "ord-key"}})
    )
    assert line["order_id"] == "ord-key"


# --------------------------------------------------------------------------- event_ts rule
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (TS, "2026-11-21T10:15:30Z"),  # AWS: whole seconds
        (TS + 0.123, "2026-11-21T10:15:30.123Z"),  # moto: milliseconds
        (float(TS), "2026-11-21T10:15:30Z"),  # zero milliseconds: no fraction
        (TS + 0.5, "2026-11-21T10:15:30.500Z"),
        (TS + 0.0004, "2026-11-21T10:15:30Z"),  # rounded to the nearest millisecond
        (TS + 0.9996, "2026-11-21T10:15:31Z"),  # ... which can carry into the next second
        (0, "1970-01-01T00:00:00Z"),
        (-1.5, "1969-12-31T23:59:58.500Z"),
    ],
)
def test_event_ts_rule(value, expected):
    assert transform.format_event_ts(value) == expected
    assert transform_one(stream_record(ts=value))["event_ts"] == expected


@pytest.mark.parametrize("value", [None, "1795256130", True, 1e300, -1e20, 10**12])
def test_event_ts_rejects_non_numbers_and_out_of_range(value):
    with pytest.raises(transform.RecordError) as caught:
        transform.format_event_ts(value)
    assert caught.value.reason == "bad_timestamp"


# --------------------------------------------------------------------------- attribute types
def test_every_dynamodb_type():
    raw_b = b"\x00\x01gadget\xff"
    image = order_image(
        s={"S": "Café ☕ — ünïcödé"},
        empty_s={"S": ""},
        n38={"N": "12345678901234567890123456789012345678"},
        n38_frac={"N": "-0.12345678901234567890123456789012345678"},
        n_int={"N": "0"},
        b={"B": b64(raw_b)},
        t={"BOOL": True},
        f={"BOOL": False},
        null={"NULL": True},
        m={"M": {"a": {"S": "x"}, "n": {"N": "1.50"}, "deep": {"M": {"l": {"L": [{"NULL": True}]}}}}},
        empty_m={"M": {}},
        lst={"L": [{"S": "a"}, {"N": "2"}, {"BOOL": False}, {"L": []}, {"M": {"k": {"B": b64(b"k")}}}]},
        ss={"SS": ["pear", "apple", "Zebra"]},
        ns={"NS": ["10", "9", "-1.5", "100.25"]},
        bs={"BS": [b64(b"\xff"), b64(b"\x00\x02"), b64(b"\x00\x01")]},
    )
    line = transform_one(stream_record(new=image))
    assert line["s"] == "Café ☕ — ünïcödé"
    assert line["empty_s"] == ""
    assert line["n38"] == "12345678901234567890123456789012345678"
    assert Decimal(line["n38"]) == 12345678901234567890123456789012345678
    assert line["n38_frac"] == "-0.12345678901234567890123456789012345678"
    assert line["n_int"] == "0"
    assert base64.b64decode(line["b"]) == raw_b
    assert line["t"] is True and line["f"] is False
    assert line["null"] is None
    assert line["m"] == {"a": "x", "n": "1.50", "deep": {"l": [None]}}
    assert line["empty_m"] == {}
    assert line["lst"] == ["a", "2", False, [], {"k": b64(b"k")}]
    assert line["ss"] == ["Zebra", "apple", "pear"]  # sorted (code point order)
    assert line["ns"] == ["-1.5", "9", "10", "100.25"]  # sorted by numeric value, as decimal text
    assert line["bs"] == [b64(b"\x00\x01"), b64(b"\x00\x02"), b64(b"\xff")]  # sorted by the bytes


def test_output_is_utf8_not_ascii_escaped():
    (record,) = run([encode_json(stream_record(new=order_image(product={"S": "Café"})))])
    assert "Café".encode() in base64.b64decode(record["data"])


def test_binary_is_canonical_base64():
    # padding-free variants are rejected elsewhere; a valid value comes back as the same base64 text
    line = transform_one(stream_record(new=order_image(blob={"B": "AAEC"})))
    assert line["blob"] == "AAEC"


# --------------------------------------------------------------------------- money
@pytest.mark.parametrize("price", ["199.99", "199.90", "0.01", "1999999999999999999999999999999999.99", "-5"])
def test_money_is_exact_decimal_text(price):
    (record,) = run([encode_json(stream_record(new=order_image(unit_price={"N": price})))])
    raw_text = base64.b64decode(record["data"]).decode()
    assert f'"unit_price":"{price}"' in raw_text  # a JSON string, never a JSON number
    line = decode_line(record)
    assert line["unit_price"] == price
    assert Decimal(line["unit_price"]) == Decimal(price)


def test_price_199_99_is_not_a_float():
    line = transform_one(stream_record())
    assert line["unit_price"] == "199.99"
    assert isinstance(line["unit_price"], str)
    assert Decimal(line["unit_price"]) == Decimal("199.99")
    assert Decimal(line["total"]) == Decimal("399.98")


# --------------------------------------------------------------------------- reserved keys
def test_envelope_keys_constant_matches_the_design():
    assert list(transform.ENVELOPE_KEYS) == ENVELOPE_KEYS


def test_envelope_wins_over_same_named_attributes():
    image = order_image(
        event_id={"S": "forged"},
        event_name={"S": "INSERT"},
        event_ts={"S": "1999-01-01T00:00:00Z"},
        sequence_number={"N": "1"},
        is_deleted={"BOOL": True},
    )
    image["order_id"] = {"S": "ord-other"}
    line = transform_one(stream_record("MODIFY", new=image, seq="555", order_id="ord-1"))
    assert list(line)[:6] == ENVELOPE_KEYS
    assert line["event_id"] == "e0c4b1f5a0d3e2f1"
    assert line["event_name"] == "MODIFY"
    assert line["event_ts"] == "2026-11-21T10:15:30Z"
    assert line["sequence_number"] == "555"
    assert line["order_id"] == "ord-1"
    assert line["is_deleted"] is False
    assert line["status"] == "PAID"


# --------------------------------------------------------------------------- failures
def _raw(stream_bytes: bytes) -> str:
    return b64(stream_bytes)


def _with(**changes: Any) -> str:
    """A stream record with top-level or dynamodb-level fields changed (None deletes)."""
    record = stream_record()
    for dotted, value in changes.items():
        target = record["dynamodb"] if dotted.startswith("ddb_") else record
        key = dotted.removeprefix("ddb_")
        if value is None:
            target.pop(key, None)
        else:
            target[key] = value
    return encode_json(record)


def _typed(value: Any) -> str:
    return encode_json(stream_record(new=order_image(bad=value)))


DEEP_TEXT = json.dumps(stream_record(new=order_image(x="DEEP"))).replace(
    '"DEEP"', '{"L":[' * 3000 + "]}" * 3000
)
BAD_RECORDS = {
    "bad_base64_chars": ("not base64 at all!!", "bad_base64"),
    "bad_base64_padding": ("QUJDRA", "bad_base64"),
    "bad_base64_junk_inside": (
        encode_json(stream_record())[:8] + "*" + encode_json(stream_record())[8:],
        "bad_base64",
    ),
    "bad_base64_line_breaks": (
        base64.encodebytes(json.dumps(stream_record()).encode()).decode(),
        "bad_base64",
    ),
    "bad_base64_non_ascii": ("QUJD\u00e9", "bad_base64"),
    "not_utf8": (_raw(b'{"eventName": "\xff\xfe"}'), "not_utf8"),
    "utf16": (_raw(json.dumps(stream_record()).encode("utf-16")), "not_utf8"),
    "not_json": (_raw(b'{"eventName": "INSERT",'), "not_json"),
    "empty": ("", "not_json"),
    "json_array": (_raw(b"[1, 2, 3]"), "not_object"),
    "json_string": (_raw(b'"INSERT"'), "not_object"),
    "json_null": (_raw(b"null"), "not_object"),
    "missing_event_name": (_with(eventName=None), "not_stream_event"),
    "missing_dynamodb": (_with(dynamodb=None), "not_stream_event"),
    "missing_event_id": (_with(eventID=None), "not_stream_event"),
    "unknown_event_name": (_with(eventName="UPDATE"), "unknown_event_name"),
    "lowercase_event_name": (_with(eventName="insert"), "unknown_event_name"),
    "other_source": (_with(eventSource="aws:kinesis"), "wrong_event_source"),
    "missing_sequence_number": (_with(ddb_SequenceNumber=None), "bad_sequence_number"),
    "numeric_sequence_number": (_with(ddb_SequenceNumber=123), "bad_sequence_number"),
    "non_digit_sequence_number": (_with(ddb_SequenceNumber="12a"), "bad_sequence_number"),
    "negative_sequence_number": (_with(ddb_SequenceNumber="-5"), "bad_sequence_number"),
    "unicode_digit_sequence_number": (_with(ddb_SequenceNumber="١٢"), "bad_sequence_number"),
    "empty_sequence_number": (_with(ddb_SequenceNumber=""), "bad_sequence_number"),
    "missing_timestamp": (_with(ddb_ApproximateCreationDateTime=None), "bad_timestamp"),
    "string_timestamp": (_with(ddb_ApproximateCreationDateTime="2026-11-21"), "bad_timestamp"),
    "nan_timestamp": (_raw(json.dumps(stream_record(ts=float("nan"))).encode()), "bad_timestamp"),
    "missing_keys": (_with(ddb_Keys=None), "missing_order_id"),
    "missing_order_id": (_with(ddb_Keys={"sku": {"S": "x"}}), "missing_order_id"),
    "numeric_order_id": (_with(ddb_Keys={"order_id": {"N": "1"}}), "bad_order_id"),
    "empty_order_id": (_with(ddb_Keys={"order_id": {"S": ""}}), "bad_order_id"),
    "insert_without_new_image": (encode_json(stream_record("INSERT", old=order_image())), "missing_image"),
    "image_not_a_map": (encode_json(stream_record(new=["order_id"])), "bad_typed_value"),  # type: ignore[arg-type]
    "n_not_a_number": (_typed({"N": "abc"}), "bad_typed_value"),
    "n_nan": (_typed({"N": "NaN"}), "bad_typed_value"),
    "n_infinity": (_typed({"N": "Infinity"}), "bad_typed_value"),
    "n_39_digits": (_typed({"N": "1" * 39}), "bad_typed_value"),
    "n_overflow": (_typed({"N": "1E+200"}), "bad_typed_value"),
    "n_as_json_number": (_typed({"N": 5}), "bad_typed_value"),
    "s_not_a_string": (_typed({"S": 1}), "bad_typed_value"),
    "two_type_tags": (_typed({"S": "a", "N": "1"}), "bad_typed_value"),
    "no_type_tag": (_typed({}), "bad_typed_value"),
    "lowercase_tag": (_typed({"s": "a"}), "bad_typed_value"),
    "unknown_tag": (_typed({"X": "a"}), "bad_typed_value"),
    "untyped_value": (_typed("plain"), "bad_typed_value"),
    "b_not_base64": (_typed({"B": "@@@@"}), "bad_typed_value"),
    "null_false": (_typed({"NULL": False}), "bad_typed_value"),
    "bool_as_string": (_typed({"BOOL": "true"}), "bad_typed_value"),
    "m_not_a_map": (_typed({"M": [1]}), "bad_typed_value"),
    "l_not_a_list": (_typed({"L": "abc"}), "bad_typed_value"),
    "ss_not_a_list": (_typed({"SS": "abc"}), "bad_typed_value"),
    "ss_with_number": (_typed({"SS": ["a", 1]}), "bad_typed_value"),
    "ns_with_text": (_typed({"NS": ["1", "x"]}), "bad_typed_value"),
    "bs_with_junk": (_typed({"BS": ["AA==", "!"]}), "bad_typed_value"),
    "nested_bad": (_typed({"M": {"a": {"L": [{"N": "1.2.3"}]}}}), "bad_typed_value"),
    "lone_surrogate": (encode_json(stream_record(new=order_image(x={"S": "\ud800"}))), "unencodable_text"),
    "deep_nesting": (_raw(DEEP_TEXT.encode()), "not_json"),
}


@pytest.mark.parametrize("case", sorted(BAD_RECORDS))
def test_bad_record_fails_alone_with_original_data(case, caplog):
    bad_data, reason = BAD_RECORDS[case]
    good = [encode_json(stream_record(seq=str(i), order_id=f"ord-{i}")) for i in range(3)]
    with caplog.at_level(logging.INFO, logger="gadget_sales_transform"):
        out = run([good[0], bad_data, good[1], good[2]])
    assert [r["result"] for r in out] == ["Ok", "ProcessingFailed", "Ok", "Ok"]
    assert out[1]["data"] == bad_data
    assert [decode_line(out[i])["order_id"] for i in (0, 2, 3)] == ["ord-0", "ord-1", "ord-2"]
    summary = _summary(caplog)
    assert summary["failures"] == [{"recordId": "rec-0001", "reason": reason}]


def test_every_bad_kind_in_one_batch():
    good = encode_json(stream_record())
    datas = []
    for bad_data, _reason in BAD_RECORDS.values():
        datas += [good, bad_data]
    out = run(datas)
    assert [r["result"] for r in out] == ["Ok", "ProcessingFailed"] * len(BAD_RECORDS)
    assert [r["data"] for r in out[1::2]] == [bad for bad, _ in BAD_RECORDS.values()]


def test_json_with_surrounding_whitespace_is_fine():
    text = "  \n" + json.dumps(stream_record()) + "\n "
    (record,) = run([b64(text.encode())])
    assert decode_line(record)["order_id"] == "ord-1"


def test_json_with_trailing_data_fails():
    text = json.dumps(stream_record()) + " {}"
    (record,) = run([b64(text.encode())])
    assert record["result"] == "ProcessingFailed"


def test_record_level_garbage_never_raises():
    event = {"invocationId": "x", "records": [{"recordId": "a"}, {"recordId": "b", "data": 42}]}
    out = transform.handler(event, None)["records"]
    assert out == [
        {"recordId": "a", "result": "ProcessingFailed", "data": ""},
        {"recordId": "b", "result": "ProcessingFailed", "data": ""},
    ]
    out = transform.handler({"records": ["not a record"]}, None)["records"]
    assert [r["result"] for r in out] == ["ProcessingFailed"]


@pytest.mark.parametrize("event", [{}, {"records": None}, {"records": "x"}, None, [], "event"])
def test_event_without_records_list(event):
    assert transform.handler(event, None) == {"records": []}


def test_empty_records_list():
    assert transform.handler(firehose_event([]), None) == {"records": []}


def test_never_dropped_and_order_preserved():
    datas = [encode_json(stream_record(seq=str(n), order_id=f"ord-{n}")) for n in range(50)]
    out = run(datas)
    assert {r["result"] for r in out} == {"Ok"}
    assert [decode_line(r)["sequence_number"] for r in out] == [str(n) for n in range(50)]


# --------------------------------------------------------------------------- logging
def _summary(caplog) -> dict:
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "gadget_sales_transform"]
    summaries = [line for line in lines if line.get("msg") == "transform_summary"]
    assert len(summaries) == 1, lines
    return summaries[0]


def test_summary_log_is_structured_and_never_contains_record_contents(caplog):
    secret = "SECRET-CUSTOMER-NAME"
    datas = [
        encode_json(stream_record(new=order_image(customer_name={"S": secret}))),
        _typed({"S": secret, "N": "1"}),
        b64(f'{{"{secret}": '.encode()),
    ]
    with caplog.at_level(logging.INFO, logger="gadget_sales_transform"):
        run(datas)
    summary = _summary(caplog)
    assert summary["invocationId"] == "inv-0001"
    assert summary["records"] == 3
    assert summary["counts"] == {"Ok": 1, "Dropped": 0, "ProcessingFailed": 2}
    assert summary["failure_reasons"] == {"bad_typed_value": 1, "not_json": 1}
    assert summary["failures"] == [
        {"recordId": "rec-0001", "reason": "bad_typed_value"},
        {"recordId": "rec-0002", "reason": "not_json"},
    ]
    assert all(secret not in r.getMessage() for r in caplog.records)


def test_summary_log_caps_the_failure_list(caplog):
    with caplog.at_level(logging.INFO, logger="gadget_sales_transform"):
        run(["!"] * 150)
    summary = _summary(caplog)
    assert summary["counts"]["ProcessingFailed"] == 150
    assert len(summary["failures"]) == transform.MAX_LOGGED_FAILURES
    assert summary["failures_truncated"] == 50


def test_pure_functions_are_usable_alone():
    event = transform.decode_record(encode_json(stream_record()))
    assert event["eventName"] == "INSERT"
    raw_line = transform.to_raw_line(event)
    assert raw_line.endswith(b"\n")
    assert json.loads(raw_line)["order_id"] == "ord-1"
    image = {"n": {"N": "1.0"}, "s": {"SS": ["b", "a"]}}
    assert transform.unmarshal_image(image) == {"n": "1.0", "s": ["a", "b"]}


# --------------------------------------------------------------------------- properties
@HYPOTHESIS
@given(st.lists(st.binary(max_size=300), max_size=8))
def test_property_arbitrary_bytes(payloads):
    event = firehose_event([b64(p) for p in payloads])
    assert_contract(event, transform.handler(event, None), valid_input_base64=True)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=30,
)
TYPE_TAGS = ["S", "N", "B", "BOOL", "NULL", "M", "L", "SS", "NS", "BS"]
TYPED_ISH = st.dictionaries(st.sampled_from([*TYPE_TAGS, "s", "X"]), JSON_VALUES, max_size=2)
STREAM_ISH = st.fixed_dictionaries(
    {
        "eventID": st.one_of(st.text(max_size=5), JSON_VALUES),
        "eventName": st.sampled_from(["INSERT", "MODIFY", "REMOVE", "UPDATE"]) | JSON_VALUES,
        "dynamodb": st.fixed_dictionaries(
            {},
            optional={
                "ApproximateCreationDateTime": st.integers(-(10**13), 10**13) | st.floats() | JSON_VALUES,
                "Keys": st.dictionaries(st.just("order_id"), TYPED_ISH) | JSON_VALUES,
                "NewImage": st.dictionaries(st.text(max_size=5), TYPED_ISH | JSON_VALUES, max_size=4),
                "OldImage": st.dictionaries(st.text(max_size=5), TYPED_ISH, max_size=4) | JSON_VALUES,
                "SequenceNumber": st.from_regex(r"\A[0-9]{1,25}\Z") | JSON_VALUES,
            },
        )
        | JSON_VALUES,
    },
    optional={"eventSource": st.sampled_from(["aws:dynamodb", "aws:s3"])},
)


@HYPOTHESIS
@given(st.lists(JSON_VALUES | STREAM_ISH, max_size=6))
def test_property_arbitrary_json_values(values):
    event = firehose_event([b64(json.dumps(v).encode()) for v in values])
    assert_contract(event, transform.handler(event, None), valid_input_base64=True)


# Valid typed values, each paired with the JSON value the raw line must hold for it.
def _decimal_text(unscaled: int, exponent: int) -> tuple[dict, str]:
    text = str(Decimal(unscaled).scaleb(exponent))
    return {"N": text}, text


DECIMALS = st.builds(_decimal_text, st.integers(-(10**38) + 1, 10**38 - 1), st.integers(-20, 0))
SCALARS = st.one_of(
    st.text(max_size=20).map(lambda s: ({"S": s}, s)),
    DECIMALS,
    st.binary(max_size=20).map(lambda b: ({"B": b64(b)}, b64(b))),
    st.booleans().map(lambda b: ({"BOOL": b}, b)),
    st.just(({"NULL": True}, None)),
    st.lists(st.text(max_size=8), min_size=1, max_size=5, unique=True).map(
        lambda ss: ({"SS": ss}, sorted(ss))
    ),
    st.lists(DECIMALS, min_size=1, max_size=5, unique_by=lambda pair: Decimal(pair[1])).map(
        lambda ns: ({"NS": [t["N"] for t, _ in ns]}, [x for _, x in sorted(ns, key=lambda p: Decimal(p[1]))])
    ),
    st.lists(st.binary(max_size=8), min_size=1, max_size=5, unique=True).map(
        lambda bs: ({"BS": [b64(b) for b in bs]}, [b64(b) for b in sorted(bs)])
    ),
)


def _as_list(items: list[tuple[dict, Any]]) -> tuple[dict, Any]:
    return {"L": [t for t, _ in items]}, [x for _, x in items]


def _as_map(items: dict[str, tuple[dict, Any]]) -> tuple[dict, Any]:
    return {"M": {k: t for k, (t, _) in items.items()}}, {k: x for k, (_, x) in items.items()}


TYPED = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4).map(_as_list)
        | st.dictionaries(st.text(max_size=8), children, max_size=4).map(_as_map)
    ),
    max_leaves=20,
)
ATTRIBUTE_NAMES = st.text(min_size=1, max_size=12).filter(lambda n: n not in ENVELOPE_KEYS)


def _boto3_input(typed: dict) -> dict:
    """Stream JSON carries B as base64 text; boto3's TypeDeserializer wants the bytes."""
    ((tag, payload),) = typed.items()
    if tag == "B":
        return {"B": base64.b64decode(payload)}
    if tag == "BS":
        return {"BS": [base64.b64decode(p) for p in payload]}
    if tag == "L":
        return {"L": [_boto3_input(v) for v in payload]}
    if tag == "M":
        return {"M": {k: _boto3_input(v) for k, v in payload.items()}}
    return typed


def _rendered(value: Any) -> Any:
    """boto3's Python value rendered by the line rules (Decimal text, base64 text, sorted sets)."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Binary):
        return b64(value.value)
    if isinstance(value, set):
        items = list(value)
        if items and isinstance(items[0], Decimal):
            return [str(d) for d in sorted(items)]
        if items and isinstance(items[0], Binary):
            return [b64(x) for x in sorted(item.value for item in items)]
        return sorted(items)
    if isinstance(value, dict):
        return {k: _rendered(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rendered(v) for v in value]
    return value


@HYPOTHESIS
@given(st.dictionaries(st.text(max_size=8), TYPED, max_size=6))
def test_property_agrees_with_boto3_type_deserializer(attrs):
    image = {k: t for k, (t, _) in attrs.items()}
    plain = TypeDeserializer().deserialize({"M": {k: _boto3_input(t) for k, t in image.items()}})
    assert transform.unmarshal_image(image) == _rendered(plain)


@st.composite
def valid_stream_records(draw) -> tuple[dict, dict, Any]:
    order_id = draw(st.text(min_size=1, max_size=20))
    attrs = draw(st.dictionaries(ATTRIBUTE_NAMES, TYPED, max_size=8))
    image = {"order_id": {"S": order_id}, **{k: t for k, (t, _) in attrs.items()}}
    expected = {k: x for k, (_, x) in attrs.items()}
    event_name = draw(st.sampled_from(["INSERT", "MODIFY", "REMOVE"]))
    seq = str(draw(st.integers(0, 10**30)))
    ts = draw(st.integers(0, 4_102_444_800) | st.floats(0, 4_102_444_800))
    if event_name == "REMOVE":
        keys_only = draw(st.booleans())
        record = stream_record(
            event_name, old=None if keys_only else image, seq=seq, ts=ts, order_id=order_id
        )
        if keys_only:
            expected = {}
    else:
        old = {"order_id": {"S": order_id}, "status": {"S": "OLD"}} if event_name == "MODIFY" else None
        record = stream_record(event_name, new=image, old=old, seq=seq, ts=ts, order_id=order_id)
    return record, expected, ts


def _check_decimals(expected: Any, actual: Any) -> None:
    assert type(actual) is type(expected)
    if isinstance(expected, dict):
        assert actual.keys() == expected.keys()
        for k in expected:
            _check_decimals(expected[k], actual[k])
    elif isinstance(expected, list):
        assert len(actual) == len(expected)
        for e, a in zip(expected, actual, strict=True):
            _check_decimals(e, a)
    else:
        assert actual == expected


@HYPOTHESIS
@given(st.lists(valid_stream_records(), min_size=1, max_size=4))
def test_property_valid_records_round_trip(cases):
    event = firehose_event([encode_json(record) for record, _, _ in cases])
    response = transform.handler(event, None)
    assert_contract(event, response, valid_input_base64=True)
    for (record, expected, ts), out in zip(cases, response["records"], strict=True):
        line = decode_line(out)
        ddb = record["dynamodb"]
        assert line["order_id"] == ddb["Keys"]["order_id"]["S"]
        assert line["sequence_number"] == ddb["SequenceNumber"]
        assert line["event_id"] == record["eventID"]
        assert line["event_name"] == record["eventName"]
        assert line["is_deleted"] is (record["eventName"] == "REMOVE")
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z", line["event_ts"])
        parsed = datetime.fromisoformat(line["event_ts"])
        assert abs(parsed - (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=ts))) <= timedelta(
            microseconds=501
        )
        attributes = {k: v for k, v in line.items() if k not in ENVELOPE_KEYS}
        _check_decimals(expected, attributes)  # exact: N text is str(Decimal), e.g. "199.90" stays
        image = ddb.get("NewImage") or ddb.get("OldImage") or {}
        for name, typed in image.items():
            if "N" in typed:
                assert Decimal(attributes[name]) == Decimal(typed["N"])
