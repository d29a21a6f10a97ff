"""The order generator: the pure plan (fast, no AWS), the writer (a stub and the local AWS) and the CLI."""

from __future__ import annotations

import argparse
import re
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from boto3.dynamodb.types import TypeDeserializer

from gadget_pipeline import config
from gadget_pipeline.ingest import catalog, cli
from gadget_pipeline.ingest.generator import (
    BATCH_WRITE_LIMIT,
    LIVE,
    LifecycleSettings,
    OperationKind,
    OrderWriter,
    WriteSummary,
    derive_run_id,
    final_state,
    generate,
    iter_operations,
    plan_operations,
)

START = datetime(2025, 1, 1, tzinfo=UTC)
PRODUCTS = {product.name: product for product in catalog.CATALOG}


def test_same_seed_same_operations_other_seed_other_operations() -> None:
    first = plan_operations(300, seed=42, start=START)
    assert first == plan_operations(300, seed=42, start=START)
    other = plan_operations(300, seed=43, start=START)
    assert [op.item for op in other if op.item] != [op.item for op in first if op.item]
    assert derive_run_id(42) == derive_run_id(42) != derive_run_id(43)


def test_no_order_id_collides_in_100k_orders_or_across_runs() -> None:
    operations = plan_operations(100_000, seed=7, start=START)
    placed = [op.order_id for op in operations if op.kind is OperationKind.PUT]
    assert len(placed) == 100_000 == len(set(placed))
    assert {op.order_id for op in operations} == set(placed), "changes only touch placed orders"
    run_ids = {derive_run_id(seed) for seed in range(10_000)}
    assert len(run_ids) == 10_000, "runs with different seeds never share ids"


def test_lifecycle_is_put_then_changes_then_maybe_delete() -> None:
    operations = plan_operations(2000, seed=3, start=START)
    kinds = Counter(op.kind for op in operations)
    assert kinds[OperationKind.PUT] == 2000
    assert kinds[OperationKind.UPDATE] > 1000 and 100 < kinds[OperationKind.DELETE] < 300
    history: dict[str, list[Any]] = {}
    for op in operations:
        history.setdefault(op.order_id, []).append(op)
    order_of_status = ["PLACED", "SHIPPED", "DELIVERED"]
    for order_ops in history.values():
        assert order_ops[0].kind is OperationKind.PUT
        assert all(op.kind is not OperationKind.PUT for op in order_ops[1:])
        assert all(op.kind is not OperationKind.DELETE for op in order_ops[:-1]), "nothing after a delete"
        times = [op.at for op in order_ops]
        assert times == sorted(times)
        statuses = [op.changes["status"] for op in order_ops[1:] if op.changes and "status" in op.changes]
        ranks = [order_of_status.index(status) for status in statuses]
        assert ranks == sorted(ranks)
    assert final_state(operations)  # applies cleanly: no update of a missing order


def test_prices_are_exact_plausible_decimals() -> None:
    state = final_state(plan_operations(3000, seed=11, start=START))
    for order in filter(None, state.values()):
        product = PRODUCTS[order["product_name"]]
        price, quantity, total = order["unit_price"], order["quantity"], order["total_amount"]
        assert isinstance(price, Decimal) and price.as_tuple().exponent == -2
        assert product.min_price <= price <= product.max_price
        assert isinstance(quantity, int) and 1 <= quantity <= product.max_quantity
        assert total == price * quantity and total.as_tuple().exponent == -2
        assert (order["brand"], order["category"]) == (product.brand, product.category)
        assert order["currency"] == "USD"
        assert set(order["shipping_address"]) == {"street", "city", "state", "postal_code", "country"}
    chargers = [o["unit_price"] for o in state.values() if o and "Charger" in o["product_name"]]
    assert chargers and max(chargers) < 60


def test_timestamps_are_iso_utc_inside_the_window() -> None:
    operations = plan_operations(500, seed=5, start=START, days=7)
    for op in operations:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", op.at)
    placed = [op.item["order_ts"] for op in operations if op.item]
    assert placed == sorted(placed)
    assert START.strftime("%Y-%m-%d") <= placed[0] and placed[-1] < (START + timedelta(days=8)).isoformat()


def test_shares_are_configurable() -> None:
    no_changes = LifecycleSettings(update_share=0.0, cancel_share=0.0)
    kinds = {op.kind for op in plan_operations(200, seed=1, start=START, settings=no_changes)}
    assert kinds == {OperationKind.PUT}
    all_cancelled = LifecycleSettings(update_share=0.0, cancel_share=1.0)
    kinds = Counter(op.kind for op in plan_operations(200, seed=1, start=START, settings=all_cancelled))
    assert kinds == {OperationKind.PUT: 200, OperationKind.DELETE: 200}
    with pytest.raises(ValueError):
        LifecycleSettings(update_share=0.8, cancel_share=0.3)
    with pytest.raises(ValueError):
        plan_operations(0, seed=1, start=START)


def test_continuous_mode_never_ends_and_compresses_the_lifecycle() -> None:
    stream = iter_operations(seed=9, start=START, orders=None, mean_gap_seconds=0.05, settings=LIVE)
    first = [next(stream) for _ in range(5000)]
    assert Counter(op.kind for op in first)[OperationKind.UPDATE] > 1000
    assert first[-1].at < (START + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------- the writer (stub client)


class StubDynamoDB:
    """Records calls; the first batch call leaves its last two items unprocessed."""

    def __init__(self) -> None:
        self.batches: list[list[dict]] = []
        self.updates: list[dict] = []
        self.leave_unprocessed = True

    def batch_write_item(self, RequestItems: dict) -> dict:  # noqa: N803 - boto3's spelling
        (table, requests), = RequestItems.items()
        self.batches.append(requests)
        if self.leave_unprocessed and len(requests) > 2:
            self.leave_unprocessed = False
            return {"UnprocessedItems": {table: requests[-2:]}}
        return {"UnprocessedItems": {}}

    def update_item(self, **kwargs: Any) -> dict:
        self.updates.append(kwargs)
        return {}


def key_of(request: dict) -> str:
    inner = request.get("PutRequest", {}).get("Item") or request["DeleteRequest"]["Key"]
    return inner["order_id"]["S"]


def test_writer_batches_without_reordering_an_order_and_retries_unprocessed(monkeypatch) -> None:
    monkeypatch.setattr("gadget_pipeline.ingest.generator.time.sleep", lambda _seconds: None)
    operations = plan_operations(200, seed=21, start=START)
    client = StubDynamoDB()
    written: list[tuple[str, float]] = []
    writer = OrderWriter(client, "T",
                         on_written=lambda ops, at: written.extend((op.order_id, at) for op in ops))
    summary = writer.write(operations, WriteSummary(run_id="r", seed=21))
    assert summary.operations == len(operations) == len(written)
    assert summary.unprocessed_retries == 2 and client.batches[1] == client.batches[0][-2:]
    assert all(len(batch) <= BATCH_WRITE_LIMIT for batch in client.batches)
    assert all(len({key_of(r) for r in batch}) == len(batch) for batch in client.batches), "one key per batch"
    assert summary.counts[OperationKind.UPDATE.value] == len(client.updates)
    assert len(client.batches) < summary.counts["put"] / 5, "puts and deletes are batched"
    update = client.updates[0]
    assert update["ConditionExpression"] == "attribute_exists(#key)"
    assert all("N" in v or "S" in v for v in update["ExpressionAttributeValues"].values())


def test_writer_respects_the_rate() -> None:
    operations = plan_operations(20, seed=2, start=START)[:30]
    started = time.monotonic()
    OrderWriter(StubDynamoDB(), "T").write(operations, WriteSummary(run_id="r", seed=2), rate=100.0)
    assert time.monotonic() - started >= (len(operations) - 1) / 100.0 * 0.95
    with pytest.raises(ValueError):
        OrderWriter(StubDynamoDB(), "T").write(operations, WriteSummary(run_id="r", seed=2), rate=-1)


# --------------------------------------------------------------------------- the writer (local AWS)


def to_plain(item: dict) -> dict:
    deserialize = TypeDeserializer().deserialize
    return {name: deserialize(value) for name, value in item.items()}


def test_generate_writes_the_planned_orders_and_refuses_a_reused_seed(aws, deployed) -> None:
    summary = generate(aws, deployed, orders=60, seed=123, start=START, show_progress=False)
    expected = final_state(plan_operations(60, seed=123, start=START))
    assert summary.operations == sum(summary.counts.values()) and summary.run_id == derive_run_id(123)
    items = aws.client("dynamodb").scan(TableName=deployed["TableName"])["Items"]
    assert {item["order_id"]["S"]: to_plain(item) for item in items} == {
        order_id: order for order_id, order in expected.items() if order is not None
    }
    with pytest.raises(config.ConfigError, match="seed was used before"):
        generate(aws, deployed, orders=5, seed=123, show_progress=False)


# --------------------------------------------------------------------------- the CLI


def parser() -> argparse.ArgumentParser:
    from gadget_pipeline.cli import OneLineParser

    root = OneLineParser(prog="gadget-pipeline")
    cli.register(root.add_subparsers(dest="verb", parser_class=OneLineParser))
    return root


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["generate", "--orders", "0"], "at least 1"),
        (["generate", "--orders", "2.5"], "whole number"),
        (["generate", "--orders", "many"], "whole number"),
        (["generate", "--orders", "5", "--rate", "-1"], "positive"),
        (["generate", "--orders", "5", "--rate", "nan"], "positive"),
        (["generate", "--orders", "5", "--seed", "x"], "whole number"),
        (["stream", "--drain", "extra"], "unrecognized"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(argv: list[str], message: str, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parser().parse_args(argv)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and message in error, error


def test_good_arguments_parse_to_a_command() -> None:
    args = parser().parse_args(["generate", "--orders", "10", "--rate", "5", "--seed", "1"])
    assert (args.orders, args.rate, args.seed, args.continuous) == (10, 5.0, 1, False)
    assert args.func is cli.cmd_generate
    assert parser().parse_args(["stream", "--drain"]).func is cli.cmd_stream


def test_generate_without_orders_or_continuous_is_a_config_error() -> None:
    with pytest.raises(config.ConfigError, match="--orders"):
        cli.cmd_generate(parser().parse_args(["generate"]))


@pytest.mark.parametrize("orders", [1, 7, 60, 500])
def test_backfill_orders_stay_inside_their_window(orders: int) -> None:
    start = datetime(2026, 11, 14, tzinfo=UTC)
    for seed in range(20):
        placed = [op.item["order_ts"] for op in plan_operations(orders, seed=seed, start=start, days=7)
                  if op.kind is OperationKind.PUT]
        assert len(placed) == orders
        end = (start + timedelta(days=7)).isoformat()[:10]
        assert all(start.isoformat()[:10] <= ts[:10] < end for ts in placed)
