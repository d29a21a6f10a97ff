"""The full Dagster graph over raw files on a real moto server: results equal an independent model, every
check passes, and corrupting one row makes exactly the check for it fail."""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from decimal import Decimal
from typing import Any

import dagster as dg
import pytest

from gadget_pipeline.athena import engine_for
from gadget_pipeline.athena.current_state import CURRENT_STATE_TABLE
from gadget_pipeline.aws import AwsTarget
from gadget_pipeline.checks import order_fingerprint, reconcile
from gadget_pipeline.definitions import build_definitions
from gadget_pipeline_tests.test_crawler import put_raw_object, raw_event
from gadget_pipeline_tests.test_sql import expected_current_state

DAY_1, DAY_2 = "2026-05-01", "2026-05-02"


def cdc_history() -> list[list[dict[str, Any]]]:
    """Objects of raw events: inserts, updates, a delete, a cancellation, duplicates, reordering."""
    d1, d2 = f"{DAY_1}T09:00:00Z", f"{DAY_2}T18:00:00Z"
    placed = [
        raw_event("o1", 100, event="INSERT", order_ts=d1, product="pixel"),
        raw_event("o2", 101, event="INSERT", order_ts=d1, product="buds", quantity=2),
        raw_event("o3", 102, event="INSERT", order_ts=d1, product="kindle"),
        raw_event("o4", 103, event="INSERT", order_ts=d2, product="buds"),
        raw_event("o5", 104, event="INSERT", order_ts=d2, product="pixel", quantity=3),
    ]
    changed = [
        raw_event("o1", 200, status="SHIPPED", order_ts=d1, product="pixel"),
        raw_event("o2", 201, quantity=4, order_ts=d1, product="buds"),  # quantity edit
        raw_event("o3", 202, event="REMOVE", order_ts=d1, product="kindle"),  # deleted
        raw_event("o4", 203, status="CANCELLED", order_ts=d2, product="buds"),  # cancelled
        raw_event("o5", 1000, status="DELIVERED", order_ts=d2, product="pixel", quantity=3),
    ]
    late = [
        raw_event(
            "o5", 999, status="SHIPPED", order_ts=d2, product="pixel", quantity=3
        ),  # older, arrives last
        changed[0],  # a duplicate delivery of o1's update
        placed[1],  # a duplicate of o2's insert
    ]
    return [placed, changed, late]


def _write(
    aws: AwsTarget, outputs: dict[str, str], objects: list[list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    s3 = aws.client("s3")
    hours = ["2026-05-01T09", "2026-05-02T18", "2026-05-01T10"]
    for number, (hour, events) in enumerate(zip(hours, objects, strict=True)):
        put_raw_object(s3, outputs["BucketName"], hour, f"kinesis-gadget-data-s3-1-{number:04d}", events)
    return [event for events in objects for event in events]


def _mirror_into_dynamodb(aws: AwsTarget, outputs: dict[str, str], live: dict[str, dict[str, Any]]) -> None:
    """The orders table as it stands after those changes (the reconciliation's source of truth)."""
    table = aws.client("dynamodb")
    for order_id, event in live.items():
        table.put_item(
            TableName=outputs["TableName"],
            Item={
                "order_id": {"S": order_id},
                "status": {"S": event["status"]},
                "quantity": {"N": event["quantity"]},
                "unit_price": {"N": event["unit_price"]},
                "total_amount": {"N": event["total_amount"]},
            },
        )


def expected_daily_sales(live: dict[str, dict[str, Any]]) -> dict[tuple[str, str], tuple[int, int, Decimal]]:
    totals: dict[tuple[str, str], list] = defaultdict(lambda: [0, 0, Decimal("0")])
    for event in live.values():
        if event["status"] == "CANCELLED":
            continue
        entry = totals[(event["order_ts"][:10], event["product_name"])]
        entry[0] += 1
        entry[1] += int(event["quantity"])
        entry[2] += Decimal(event["total_amount"])
    return {key: tuple(value) for key, value in totals.items()}


def _run(
    defs: dg.Definitions, selection: list[str], partition: str | None = None
) -> dg.ExecuteInProcessResult:
    job = defs.resolve_implicit_global_asset_job_def()
    return job.execute_in_process(
        asset_selection=[dg.AssetKey(key) for key in selection], partition_key=partition, raise_on_error=False
    )


def _check_results(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {
        evaluation.check_name: evaluation.passed
        for evaluation in (
            event.event_specific_data
            for event in result.all_events
            if event.event_type_value == "ASSET_CHECK_EVALUATION"
        )
    }


@pytest.fixture
def built(aws: AwsTarget, deployed: dict[str, str]):
    events = _write(aws, deployed, cdc_history())
    live = expected_current_state(events)
    _mirror_into_dynamodb(aws, deployed, live)
    defs = build_definitions("local")
    result = _run(defs, ["gadget_orders_cdc", "order_current_state"])
    assert result.success
    daily = {day: _run(defs, ["daily_sales"], day) for day in (DAY_1, DAY_2)}
    return defs, live, result, daily


@pytest.mark.slow
def test_whole_graph_matches_an_independent_model_and_checks_pass(
    built, aws: AwsTarget, deployed: dict[str, str]
) -> None:
    defs, live, result, daily = built
    assert set(live) == {"o1", "o2", "o4", "o5"}
    assert _check_results(result) == {
        "no_failed_cdc_records": True,
        "order_id_is_unique": True,
        "no_negative_quantity_or_price": True,
        "current_state_reconciles_with_dynamodb": True,
    }
    for day, run in daily.items():
        assert run.success
        assert _check_results(run) == {"daily_sales_matches_current_state": True}, day

    engine = engine_for(aws, deployed)
    state = engine.query(f"SELECT * FROM {engine.database}.{CURRENT_STATE_TABLE}")  # noqa: S608
    rows = {row["order_id"]: row for row in state.to_dict("records")}
    assert set(rows) == set(live)
    for order_id, event in live.items():
        assert rows[order_id]["status"] == event["status"]
        assert rows[order_id]["total_amount"] == Decimal(event["total_amount"])
        assert isinstance(rows[order_id]["total_amount"], Decimal)
    assert rows["o5"]["status"] == "DELIVERED"  # the late, older event did not win

    sales = engine.query(f"SELECT * FROM {engine.database}.daily_sales")  # noqa: S608
    actual = {
        (str(r["order_date"]), r["product_name"]): (int(r["orders"]), int(r["units"]), r["revenue"])
        for r in sales.to_dict("records")
    }
    assert actual == expected_daily_sales(live)
    assert all(isinstance(revenue, Decimal) for _, _, revenue in actual.values())

    materialization = result.asset_materializations_for_node("order_current_state")[0]
    assert materialization.metadata["dagster/row_count"].value == len(live)
    assert materialization.metadata["build_mode"].value in ("full", "incremental")
    assert materialization.metadata["orders_rewritten"].value >= len(live)  # live + removed ones
    assert date.fromisoformat(DAY_1) in {d for d in state["order_date"]}


@pytest.mark.slow
def test_a_duplicated_row_fails_the_uniqueness_check(built, aws: AwsTarget, deployed: dict[str, str]) -> None:
    defs, _, _, _ = built
    glue, s3 = aws.client("glue"), aws.client("s3")
    location = glue.get_table(DatabaseName=deployed["GlueDatabaseName"], Name=CURRENT_STATE_TABLE)["Table"][
        "StorageDescriptor"
    ]["Location"]
    bucket, prefix = location[len("s3://") :].split("/", 1)
    key = next(
        o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"] if o["Size"] > 0
    )
    s3.copy_object(Bucket=bucket, Key=key + "-copy", CopySource={"Bucket": bucket, "Key": key})

    checks = dg.define_asset_job(
        "current_state_checks", selection=dg.AssetSelection.checks_for_assets("order_current_state")
    )
    job = dg.Definitions.merge(defs, dg.Definitions(jobs=[checks])).resolve_job_def("current_state_checks")
    outcome = _check_results(job.execute_in_process(raise_on_error=False))
    assert outcome["order_id_is_unique"] is False
    assert outcome["no_negative_quantity_or_price"] is True


@pytest.mark.slow
def test_a_changed_source_row_fails_only_reconciliation(
    built, aws: AwsTarget, deployed: dict[str, str]
) -> None:
    defs, _, _, _ = built
    aws.client("dynamodb").update_item(
        TableName=deployed["TableName"],
        Key={"order_id": {"S": "o2"}},
        UpdateExpression="SET total_amount = :t",
        ExpressionAttributeValues={":t": {"N": "1.00"}},
    )
    checks = dg.define_asset_job(
        "current_state_checks", selection=dg.AssetSelection.checks_for_assets("order_current_state")
    )
    job = dg.Definitions.merge(defs, dg.Definitions(jobs=[checks])).resolve_job_def("current_state_checks")
    outcome = _check_results(job.execute_in_process(raise_on_error=False))
    assert outcome == {
        "order_id_is_unique": True,
        "no_negative_quantity_or_price": True,
        "current_state_reconciles_with_dynamodb": False,
    }


def test_reconcile_counts_each_kind_of_difference() -> None:
    order = {"order_id": "a", "status": "PLACED", "quantity": 1, "unit_price": "9.90", "total_amount": "9.9"}
    assert order_fingerprint(order) == order_fingerprint({**order, "total_amount": Decimal("9.90")})
    counts = reconcile(
        [order, {**order, "order_id": "b"}, {**order, "order_id": "c"}],
        [order, {**order, "order_id": "b", "status": "SHIPPED"}, {**order, "order_id": "d"}],
    )
    assert counts == {
        "orders_in_table": 3,
        "orders_in_lake": 3,
        "missing_in_lake": 1,
        "unexpected_in_lake": 1,
        "mismatched": 1,
    }


def test_definitions_load_in_both_environments(monkeypatch: pytest.MonkeyPatch) -> None:
    """AWS resources are constructed without calling AWS."""
    monkeypatch.delenv("GADGET_AWS_ENDPOINT", raising=False)
    for environment in ("local", "aws"):
        defs = build_definitions(environment)
        dg.Definitions.validate_loadable(defs)
        keys = {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}
        assert keys == {"raw_cdc_files", "gadget_orders_cdc", "order_current_state", "daily_sales"}
        sensor = defs.resolve_sensor_def("raw_cdc_files_sensor")
        expected = (
            dg.DefaultSensorStatus.RUNNING if environment == "local" else dg.DefaultSensorStatus.STOPPED
        )
        assert sensor.default_status == expected


def test_yesterday_schedule_requests_the_day_that_just_ended() -> None:
    from datetime import UTC, datetime

    defs = build_definitions("local")
    schedule = defs.resolve_schedule_def("daily_sales_for_yesterday")
    context = dg.build_schedule_context(
        scheduled_execution_time=datetime(2026, 11, 21, 0, 15, tzinfo=UTC),
        repository_def=defs.get_repository_def(),
    )
    requests = schedule.evaluate_tick(context).run_requests
    assert [(r.partition_key, r.run_key) for r in requests] == [("2026-11-20", "daily_sales:2026-11-20")]
