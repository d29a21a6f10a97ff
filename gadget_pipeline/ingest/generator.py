"""The order generator: a deterministic gadget-order lifecycle and its writer to the orders table.

Two halves, so the interesting part is testable without AWS:

* the **plan** (``plan_operations`` / ``iter_operations``): seed -> operations. Orders are placed
  (``put`` -> INSERT), a share later change (quantity edits while PLACED, then SHIPPED, DELIVERED:
  ``update`` -> MODIFY) and a share are cancelled (``delete`` -> REMOVE). Timestamps come from a
  simulated clock, never the wall clock, so one seed always gives the same operations and values.
* the **writer** (``OrderWriter``, ``generate``): puts and deletes go through ``batch_write_item``
  (25 per call, unprocessed items retried), updates through ``update_item``; optional rate limit.

Order ids are ``ord-<run id>-<counter>``: the counter makes them unique within a run, the run id (derived
from the seed) across runs; ``generate`` refuses a run id whose orders already exist in the table.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import logging
import random
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from functools import lru_cache
from typing import Any

from boto3.dynamodb.types import TypeSerializer

from gadget_pipeline import config
from gadget_pipeline.aws import AwsTarget
from gadget_pipeline.ingest import catalog
from gadget_pipeline.ingest.progress import ProgressLine

LOGGER = logging.getLogger(__name__)

KEY_ATTRIBUTE = "order_id"
BATCH_WRITE_LIMIT = 25  # DynamoDB BatchWriteItem maximum
MAX_UNPROCESSED_ATTEMPTS = 10
RUN_ID_LENGTH = 10
DEFAULT_BACKFILL_DAYS = 7
# With a rate limit, buffered batch items are sent before the writer sleeps, so nothing waits long.
FLUSH_BEFORE_SLEEP_SECONDS = 0.01


class OperationKind(StrEnum):
    PUT = "put"
    UPDATE = "update"
    DELETE = "delete"


class OrderStatus(StrEnum):
    PLACED = "PLACED"
    SHIPPED = "SHIPPED"
    DELIVERED = "DELIVERED"


@dataclass(frozen=True, slots=True)
class Operation:
    """One write to the orders table. ``item`` is the whole order (put); ``changes`` the set attributes."""

    kind: OperationKind
    order_id: str
    at: str  # simulated time of the change, ISO-8601 UTC
    item: Mapping[str, Any] | None = None
    changes: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class LifecycleSettings:
    """Shares and delays of the order lifecycle. Shares are of all placed orders."""

    update_share: float = 0.6  # orders that change later (ship, maybe deliver, maybe a quantity edit first)
    cancel_share: float = 0.1  # orders cancelled (deleted) while still PLACED
    quantity_edit_share: float = 0.3  # of the changing orders, those whose quantity is edited before shipping
    delivered_share: float = 0.85  # of the shipped orders, those delivered
    customers: int = 2000
    first_change_after: tuple[float, float] = (1800.0, 6 * 3600.0)  # seconds after placement
    next_change_after: tuple[float, float] = (3600.0, 48 * 3600.0)  # seconds between later changes

    def __post_init__(self) -> None:
        for name in ("update_share", "cancel_share", "quantity_edit_share", "delivered_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, not {getattr(self, name)}")
        if self.update_share + self.cancel_share > 1.0:
            raise ValueError("update_share + cancel_share must not exceed 1")
        if self.customers < 1:
            raise ValueError("customers must be at least 1")
        for name in ("first_change_after", "next_change_after"):
            low, high = getattr(self, name)
            if not 0 < low <= high:
                raise ValueError(f"{name} must be a range 0 < low <= high, not {low}..{high}")

    def expected_operations_per_order(self) -> float:
        """Mean writes per placed order (put + its changes), for pacing a simulated clock to a rate."""
        changes = 1 + self.delivered_share + self.quantity_edit_share * self._editable_share()
        return 1.0 + self.cancel_share + self.update_share * changes

    @staticmethod
    def _editable_share() -> float:
        weights = [product.popularity for product in catalog.CATALOG]
        editable = [product.popularity for product in catalog.CATALOG if product.max_quantity > 1]
        return sum(editable) / sum(weights)


BACKFILL = LifecycleSettings()
# `make dev` / continuous mode: the same lifecycle compressed into seconds, so changes show up live.
LIVE = LifecycleSettings(first_change_after=(2.0, 15.0), next_change_after=(3.0, 30.0))


# --------------------------------------------------------------------------- the plan (pure)


def derive_run_id(seed: int) -> str:
    """The run-unique part of every order id; a pure function of the seed, so plans are reproducible."""
    return hashlib.sha256(f"gadget-orders/{seed}".encode()).hexdigest()[:RUN_ID_LENGTH]


def order_id_for(run_id: str, number: int) -> str:
    return f"ord-{run_id}-{number:07d}"


def iso_utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@lru_cache(maxsize=64)
def _iso_day(day: int) -> str:
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(days=day)).strftime("%Y-%m-%d")


def iso_from_epoch(seconds: float) -> str:
    """Epoch seconds -> ``YYYY-MM-DDTHH:MM:SSZ``; arithmetic, as strftime was the plan's hot spot."""
    whole = int(seconds // 1)
    day, second_of_day = divmod(whole, 86400)
    hour, rest = divmod(second_of_day, 3600)
    minute, second = divmod(rest, 60)
    return f"{_iso_day(day)}T{hour:02d}:{minute:02d}:{second:02d}Z"


def backfill_start(days: int = DEFAULT_BACKFILL_DAYS, now: datetime | None = None) -> datetime:
    """Midnight UTC ``days`` ago: a window of recent order dates that is stable within one day."""
    today = (now or datetime.now(UTC)).astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=days)


@dataclass
class _OpenOrder:
    unit_price: Decimal
    quantity: int
    max_quantity: int
    steps: list[str]


def iter_operations(
    *,
    seed: int,
    start: datetime,
    orders: int | None,
    mean_gap_seconds: float,
    run_id: str | None = None,
    settings: LifecycleSettings = BACKFILL,
) -> Iterator[Operation]:
    """Operations in simulated-time order; ``orders=None`` never ends (continuous mode).

    Orders arrive as a Poisson process (mean gap ``mean_gap_seconds``), or for a finite backfill one per
    gap-long slot, so all of them fall within ``orders * mean_gap_seconds``; each order's later changes are
    scheduled at placement and interleave with newer orders, as in a real shop.
    """
    if orders is not None and orders < 0:
        raise ValueError("orders must not be negative")
    if mean_gap_seconds <= 0:
        raise ValueError("mean_gap_seconds must be positive")
    if start.tzinfo is None:
        raise ValueError("start must be timezone-aware (UTC)")
    run_id = run_id or derive_run_id(seed)
    rng = random.Random(f"orders/{seed}")
    customers = catalog.make_customers(settings.customers, random.Random(f"customers/{seed}"))
    products = catalog.CATALOG
    cumulative_weights = list(itertools.accumulate(product.popularity for product in products))
    epoch = start.timestamp()
    open_orders: dict[str, _OpenOrder] = {}
    # (simulated offset in seconds, tie-breaker, order id): one pending change per open order.
    changes: list[tuple[float, int, str]] = []
    tie = 0
    clock = 0.0
    number = 0

    def moment(offset: float) -> str:
        return iso_from_epoch(epoch + offset)

    def schedule(order_id: str, after: float, delay_range: tuple[float, float]) -> None:
        nonlocal tie
        tie += 1
        heapq.heappush(changes, (after + rng.uniform(*delay_range), tie, order_id))

    def next_change() -> Operation:
        offset, _, order_id = heapq.heappop(changes)
        order = open_orders[order_id]
        step = order.steps.pop(0)
        at = moment(offset)
        if order.steps:
            schedule(order_id, offset, settings.next_change_after)
        else:
            del open_orders[order_id]
        if step == "cancel":
            return Operation(OperationKind.DELETE, order_id, at)
        if step == "quantity":
            choices = [q for q in range(1, order.max_quantity + 1) if q != order.quantity]
            order.quantity = rng.choice(choices)
            updates = {"quantity": order.quantity, "total_amount": order.unit_price * order.quantity}
        else:
            updates = {"status": OrderStatus.SHIPPED.value if step == "ship" else OrderStatus.DELIVERED.value}
        return Operation(OperationKind.UPDATE, order_id, at, changes={**updates, "updated_at": at})

    def place(offset: float) -> Operation:
        order_id = order_id_for(run_id, number)
        product = rng.choices(products, cum_weights=cumulative_weights)[0]
        customer = rng.choice(customers)
        quantity = 1 if rng.random() < 0.75 else rng.randint(1, product.max_quantity)
        unit_price = catalog.price_point(product, rng)
        at = moment(offset)
        item = {
            "order_id": order_id,
            "customer_id": customer.customer_id,
            "product_name": product.name,
            "brand": product.brand,
            "category": product.category,
            "quantity": quantity,
            "unit_price": unit_price,
            "total_amount": unit_price * quantity,  # Decimal * int: exact, keeps the 2 places
            "currency": catalog.CURRENCY,
            "status": OrderStatus.PLACED.value,
            "order_ts": at,
            "updated_at": at,
            "shipping_address": customer.shipping_address(),
        }
        steps = _lifecycle_steps(rng, settings, product.max_quantity)
        if steps:
            open_orders[order_id] = _OpenOrder(unit_price, quantity, product.max_quantity, steps)
            schedule(order_id, offset, settings.first_change_after)
        return Operation(OperationKind.PUT, order_id, at, item=item)

    while orders is None or number < orders:
        if orders is None:
            clock += rng.expovariate(1.0 / mean_gap_seconds)
        else:
            # A backfill stays inside its window (Poisson gaps would overshoot it by about a day at a few
            # dozen orders, into order dates that do not exist yet): one arrival per gap-long slot.
            clock = max(clock, (number + rng.random()) * mean_gap_seconds)
        while changes and changes[0][0] <= clock:
            yield next_change()
        yield place(clock)
        number += 1
    while changes:
        yield next_change()


def _lifecycle_steps(rng: random.Random, settings: LifecycleSettings, max_quantity: int) -> list[str]:
    draw = rng.random()
    if draw < settings.cancel_share:
        return ["cancel"]
    if draw >= settings.cancel_share + settings.update_share:
        return []
    steps = []
    if max_quantity > 1 and rng.random() < settings.quantity_edit_share:
        steps.append("quantity")
    steps.append("ship")
    if rng.random() < settings.delivered_share:
        steps.append("deliver")
    return steps


def plan_operations(
    orders: int,
    *,
    seed: int,
    start: datetime,
    days: float = DEFAULT_BACKFILL_DAYS,
    run_id: str | None = None,
    settings: LifecycleSettings = BACKFILL,
) -> list[Operation]:
    """All operations for ``orders`` orders placed over ``days`` days from ``start``: a pure function."""
    if orders < 1:
        raise ValueError("orders must be at least 1")
    if days <= 0:
        raise ValueError("days must be positive")
    gap = days * 86400.0 / orders
    return list(iter_operations(seed=seed, start=start, orders=orders, mean_gap_seconds=gap, run_id=run_id,
                                settings=settings))


def final_state(operations: Iterable[Operation]) -> dict[str, dict[str, Any] | None]:
    """Order id -> the item after all operations (None when deleted): what the table must hold."""
    state: dict[str, dict[str, Any] | None] = {}
    for operation in operations:
        if operation.kind is OperationKind.PUT:
            state[operation.order_id] = dict(operation.item or {})
        elif operation.kind is OperationKind.DELETE:
            state[operation.order_id] = None
        else:
            current = state.get(operation.order_id)
            if current is None:
                raise ValueError(f"update of {operation.order_id} before its put or after its delete")
            current.update(operation.changes or {})
    return state


# --------------------------------------------------------------------------- the writer

WrittenCallback = Callable[[Sequence[Operation], float], None]  # (operations, wall time the call was sent)


@dataclass
class WriteSummary:
    run_id: str
    seed: int
    counts: Counter[str] = field(default_factory=Counter)
    calls: int = 0
    unprocessed_retries: int = 0
    elapsed: float = 0.0
    interrupted: bool = False  # stopped by Ctrl-C (the way to end a continuous run)

    @property
    def operations(self) -> int:
        return sum(self.counts.values())

    def describe(self) -> str:
        rate = self.operations / self.elapsed if self.elapsed > 0 else 0.0
        kinds = ", ".join(f"{kind} {self.counts.get(kind.value, 0)}" for kind in OperationKind)
        return (
            f"{self.operations} operations ({kinds}) for "
            f"{self.counts.get(OperationKind.PUT.value, 0)} orders "
            f"in {self.elapsed:.1f}s ({rate:,.0f} ops/s, {self.calls} calls, "
            f"{self.unprocessed_retries} unprocessed items retried); run {self.run_id}, seed {self.seed}"
        )


class OrderWriter:
    """Executes operations against one table, batching puts and deletes without reordering any order.

    Only one order's own operations must stay in sequence (its stream events are ordered per key): an
    operation on an order whose earlier write is still in the unsent batch waits until that batch is
    sent; other orders' operations go ahead, so batches fill up instead of being cut short.
    """

    def __init__(self, client: Any, table_name: str, *, on_written: WrittenCallback | None = None) -> None:
        self.client = client
        self.table_name = table_name
        self.on_written = on_written
        self._serialize = TypeSerializer().serialize
        self._batch: list[Operation] = []
        self._batch_keys: set[str] = set()
        self._batch_started = 0.0
        # Operations held back because an earlier write of the same order is still in the batch.
        self._deferred: list[Operation] = []
        self._deferred_keys: Counter[str] = Counter()
        self._progress: ProgressLine | None = None
        self.summary: WriteSummary | None = None

    def write(
        self,
        operations: Iterable[Operation],
        summary: WriteSummary,
        *,
        rate: float = 0.0,
        stop: threading.Event | None = None,
        progress: ProgressLine | None = None,
    ) -> WriteSummary:
        """Write until the operations end or ``stop`` is set; ``rate`` caps operations/s (0 = none)."""
        if rate < 0:
            raise ValueError("rate must not be negative")
        self.summary = summary
        self._progress = progress
        started = time.monotonic()
        try:
            for index, operation in enumerate(operations):
                if stop is not None and stop.is_set():
                    break
                if rate > 0 and not self._wait_for_slot(started + index / rate, stop):
                    break
                self._submit(operation)
            self._flush()
        finally:
            summary.elapsed = time.monotonic() - started
        return summary

    def _wait_for_slot(self, due: float, stop: threading.Event | None) -> bool:
        delay = due - time.monotonic()
        if delay <= 0:
            return True
        waited = time.monotonic() - self._batch_started
        if self._batch and (delay >= FLUSH_BEFORE_SLEEP_SECONDS or waited > 0.05):
            self._flush()
            delay = due - time.monotonic()
        if delay > 0:
            if stop is not None:
                return not stop.wait(delay)
            time.sleep(delay)
        return True

    def _submit(self, operation: Operation) -> None:
        self._place(operation)
        if len(self._batch) >= BATCH_WRITE_LIMIT:
            self._flush()

    def _place(self, operation: Operation) -> None:
        """Batch it, run it (updates), or defer it while an earlier write of the same order is unsent."""
        key = operation.order_id
        batchable = operation.kind is not OperationKind.UPDATE
        batch_full = len(self._batch) >= BATCH_WRITE_LIMIT
        if key in self._batch_keys or self._deferred_keys[key] or (batchable and batch_full):
            self._deferred.append(operation)
            self._deferred_keys[key] += 1
        elif not batchable:
            self._update(operation)
        else:
            if not self._batch:
                self._batch_started = time.monotonic()
            self._batch.append(operation)
            self._batch_keys.add(key)

    def _flush(self) -> None:
        """Send the batch, then release the deferred operations (they may fill the next batch)."""
        while self._batch:
            self._send_batch()
            waiting, self._deferred, self._deferred_keys = self._deferred, [], Counter()
            for operation in waiting:
                self._place(operation)
        # An operation is only deferred behind a non-empty batch, so none is left here.
        assert not self._deferred

    def _marshal(self, values: Mapping[str, Any]) -> dict[str, Any]:
        return {name: self._serialize(value) for name, value in values.items()}

    def _request(self, operation: Operation) -> dict[str, Any]:
        if operation.kind is OperationKind.PUT:
            return {"PutRequest": {"Item": self._marshal(operation.item or {})}}
        return {"DeleteRequest": {"Key": {KEY_ATTRIBUTE: {"S": operation.order_id}}}}

    def _send_batch(self) -> None:
        summary = self.summary
        assert summary is not None
        pending = {operation.order_id: operation for operation in self._batch}
        requests = [self._request(operation) for operation in self._batch]
        self._batch, self._batch_keys = [], set()
        for attempt in range(MAX_UNPROCESSED_ATTEMPTS):
            sent_at = time.time()
            response = self.client.batch_write_item(RequestItems={self.table_name: requests})
            summary.calls += 1
            requests = response.get("UnprocessedItems", {}).get(self.table_name, [])
            unprocessed = {_request_key(request) for request in requests}
            written = [operation for key, operation in pending.items() if key not in unprocessed]
            self._record(written, sent_at)
            if not requests:
                return
            pending = {key: pending[key] for key in unprocessed}
            summary.unprocessed_retries += len(requests)
            LOGGER.info("batch_write_unprocessed items=%d attempt=%d", len(requests), attempt + 1)
            time.sleep(min(2.0, 0.05 * 2**attempt))  # DynamoDB asks for exponential backoff here
        raise RuntimeError(f"{len(requests)} items stayed unprocessed after {MAX_UNPROCESSED_ATTEMPTS} "
                           "attempts")

    def _update(self, operation: Operation) -> None:
        changes = operation.changes or {}
        names = {f"#a{index}": name for index, name in enumerate(changes)}
        values = {f":v{index}": self._serialize(value) for index, value in enumerate(changes.values())}
        assignments = ", ".join(f"#a{index} = :v{index}" for index in range(len(changes)))
        sent_at = time.time()
        self.client.update_item(
            TableName=self.table_name,
            Key={KEY_ATTRIBUTE: {"S": operation.order_id}},
            UpdateExpression=f"SET {assignments}",
            # Never let an update resurrect a deleted order as a partial item.
            ConditionExpression="attribute_exists(#key)",
            ExpressionAttributeNames={**names, "#key": KEY_ATTRIBUTE},
            ExpressionAttributeValues=values,
        )
        assert self.summary is not None
        self.summary.calls += 1
        self._record([operation], sent_at)

    def _record(self, operations: Sequence[Operation], sent_at: float) -> None:
        if not operations:
            return
        assert self.summary is not None
        self.summary.counts.update(operation.kind.value for operation in operations)
        if self._progress is not None:
            self._progress.advance(len(operations))
        if self.on_written is not None:
            self.on_written(operations, sent_at)


def _request_key(request: Mapping[str, Any]) -> str:
    if "PutRequest" in request:
        return request["PutRequest"]["Item"][KEY_ATTRIBUTE]["S"]
    return request["DeleteRequest"]["Key"][KEY_ATTRIBUTE]["S"]


def ensure_run_is_new(client: Any, table_name: str, run_id: str) -> None:
    """Refuse a run whose first orders already exist: a reused seed would overwrite that run's orders."""
    keys = [{KEY_ATTRIBUTE: {"S": order_id_for(run_id, number)}} for number in range(BATCH_WRITE_LIMIT)]
    response = client.batch_get_item(
        RequestItems={table_name: {"Keys": keys, "ConsistentRead": True, "ProjectionExpression": "#key",
                                   "ExpressionAttributeNames": {"#key": KEY_ATTRIBUTE}}}
    )
    found = response.get("Responses", {}).get(table_name, [])
    if found:
        raise config.ConfigError(
            f"run {run_id} already wrote orders to {table_name} (e.g. {found[0][KEY_ATTRIBUTE]['S']}): "
            "its seed was used before; pick another --seed or leave it out for a fresh run"
        )


def new_seed() -> int:
    return secrets.randbits(48)


def generate(
    target: AwsTarget,
    outputs: Mapping[str, str],
    *,
    orders: int | None,
    seed: int | None = None,
    rate: float = 0.0,
    continuous: bool = False,
    start: datetime | None = None,
    stop: threading.Event | None = None,
    show_progress: bool = True,
    on_written: WrittenCallback | None = None,
    settings: LifecycleSettings | None = None,
) -> WriteSummary:
    """Generate and write orders: a backfill of ``orders`` orders, or (``continuous``) a live stream.

    Backfill: order dates spread over the last week (simulated clock from ``start``, default
    ``backfill_start()``). Continuous: the lifecycle is compressed to seconds and the simulated clock
    follows the wall clock at ``rate``; it runs until ``stop`` is set (or ``orders`` orders were placed).
    ``settings`` replaces the lifecycle (default: ``BACKFILL``, or ``LIVE`` when continuous).
    """
    client = target.client("dynamodb")
    table_name = outputs["TableName"]
    if not continuous and orders is None:
        raise ValueError("orders is required unless continuous")
    if orders is not None and orders < 1:
        raise ValueError("orders must be at least 1")
    seed = new_seed() if seed is None else seed
    run_id = derive_run_id(seed)
    ensure_run_is_new(client, table_name, run_id)
    summary = WriteSummary(run_id=run_id, seed=seed)
    operations: Iterable[Operation]
    total: int | None
    if continuous:
        settings = settings or LIVE
        ops_per_second = rate if rate > 0 else 100.0
        gap = settings.expected_operations_per_order() / ops_per_second
        operations = iter_operations(seed=seed, start=start or datetime.now(UTC), orders=orders,
                                     mean_gap_seconds=gap, run_id=run_id, settings=settings)
        total = None
    else:
        assert orders is not None
        operations = plan_operations(orders, seed=seed, start=start or backfill_start(), run_id=run_id,
                                     settings=settings or BACKFILL)
        total = len(operations)
    LOGGER.info("generate_start run=%s seed=%d orders=%s rate=%s continuous=%s", run_id, seed, orders, rate,
                continuous)
    progress = ProgressLine("generate", total=total) if show_progress else None
    writer = OrderWriter(client, table_name, on_written=on_written)
    try:
        writer.write(operations, summary, rate=rate, stop=stop, progress=progress)
    except KeyboardInterrupt:
        summary.interrupted = True
    finally:
        if progress is not None:
            progress.close()
        LOGGER.info("generate_done run=%s operations=%d calls=%d unprocessed_retries=%d", run_id,
                    summary.operations, summary.calls, summary.unprocessed_retries)
    return summary
