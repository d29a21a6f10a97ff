"""Asset checks: the curated tables are right, and the pipeline feeding them is healthy."""

import gzip
import hashlib
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

import dagster as dg

from gadget_pipeline.assets import daily_sales, gadget_orders_cdc, order_current_state
from gadget_pipeline.athena.current_state import CURRENT_STATE_TABLE
from gadget_pipeline.athena.daily_sales import DAILY_SALES_TABLE
from gadget_pipeline.partitions import ORDER_DATE_PARTITIONS
from gadget_pipeline.raw_objects import is_data_object, static_prefix
from gadget_pipeline.resources import AthenaResource, AwsStackResource, OrdersTableResource

CENT = Decimal("0.01")


@dg.asset_check(asset=order_current_state, blocking=True, description="Every order appears at most once.")
def order_id_is_unique(athena: AthenaResource) -> dg.AssetCheckResult:
    engine = athena.engine
    row = engine.run_sql_file(
        "check_current_state_unique_orders", database=engine.database, current_state_table=CURRENT_STATE_TABLE
    ).iloc[0]
    rows, orders = int(row["row_count"]), int(row["distinct_orders"])
    return dg.AssetCheckResult(
        passed=rows == orders,
        metadata={"rows": rows, "distinct_orders": orders, "duplicate_rows": rows - orders},
    )


@dg.asset_check(
    asset=order_current_state,
    blocking=True,
    description="No order has a negative quantity, unit price or total.",
)
def no_negative_quantity_or_price(athena: AthenaResource) -> dg.AssetCheckResult:
    engine = athena.engine
    row = engine.run_sql_file(
        "check_current_state_non_negative", database=engine.database, current_state_table=CURRENT_STATE_TABLE
    ).iloc[0]
    counts = {
        name: int(row[name]) for name in ("negative_quantity", "negative_unit_price", "negative_total_amount")
    }
    return dg.AssetCheckResult(passed=not any(counts.values()), metadata=counts)


@dg.asset_check(
    asset=daily_sales,
    partitions_def=ORDER_DATE_PARTITIONS,
    description="The day's revenue, orders and units equal the same sums over order_current_state.",
)
def daily_sales_matches_current_state(
    context: dg.AssetCheckExecutionContext, athena: AthenaResource
) -> dg.AssetCheckResult:
    engine = athena.engine
    day = context.partition_key
    frame = engine.run_sql_file(
        "check_daily_sales_revenue",
        database=engine.database,
        current_state_table=CURRENT_STATE_TABLE,
        daily_sales_table=DAILY_SALES_TABLE,
        order_date=day,
    )
    mismatched = [
        row.currency
        for row in frame.itertuples(index=False)
        if (row.current_state_revenue, row.current_state_orders, row.current_state_units)
        != (row.daily_sales_revenue, row.daily_sales_orders, row.daily_sales_units)
    ]
    metadata: dict[str, Any] = {"order_date": day, "mismatched_currencies": dg.MetadataValue.json(mismatched)}
    for row in frame.itertuples(index=False):
        metadata[f"{row.currency}_current_state_revenue"] = str(row.current_state_revenue)
        metadata[f"{row.currency}_daily_sales_revenue"] = str(row.daily_sales_revenue)
    return dg.AssetCheckResult(passed=not mismatched, metadata=metadata)


def order_fingerprint(order: Mapping[str, Any]) -> str:
    """What must agree between DynamoDB and the lake for one order, hashed. Decimals compared exactly."""
    text = "|".join(
        [
            str(order["order_id"]),
            str(order.get("status")),
            str(int(order["quantity"])),
            str(Decimal(str(order["unit_price"])).quantize(CENT)),
            str(Decimal(str(order["total_amount"])).quantize(CENT)),
        ]
    )
    return hashlib.sha256(text.encode()).hexdigest()


def reconcile(
    table_items: Iterable[Mapping[str, Any]], lake_rows: Iterable[Mapping[str, Any]]
) -> dict[str, int]:
    table = {str(item["order_id"]): order_fingerprint(item) for item in table_items}
    lake = {str(row["order_id"]): order_fingerprint(row) for row in lake_rows}
    both = table.keys() & lake.keys()
    return {
        "orders_in_table": len(table),
        "orders_in_lake": len(lake),
        "missing_in_lake": len(table.keys() - lake.keys()),
        "unexpected_in_lake": len(lake.keys() - table.keys()),
        "mismatched": sum(table[order_id] != lake[order_id] for order_id in both),
    }


@dg.asset_check(
    asset=order_current_state,
    description=(
        "Reconciliation with the source of truth: a consistent scan of the orders table has the same orders, "
        "each "
        "with the same status, quantity and amounts (per-order checksum). Only meaningful once the stream is "
        "drained; while changes are in flight it warns."
    ),
)
def current_state_reconciles_with_dynamodb(
    athena: AthenaResource, orders_table: OrdersTableResource
) -> dg.AssetCheckResult:
    engine = athena.engine
    lake = engine.run_sql_file(
        "current_state_snapshot", database=engine.database, current_state_table=CURRENT_STATE_TABLE
    )
    counts = reconcile(orders_table.scan_items(), lake.to_dict("records"))
    passed = counts["orders_in_table"] == counts["orders_in_lake"] and not (
        counts["missing_in_lake"] or counts["unexpected_in_lake"] or counts["mismatched"]
    )
    return dg.AssetCheckResult(passed=passed, severity=dg.AssetCheckSeverity.WARN, metadata=counts)


def count_error_records(s3: Any, bucket: str, prefix: str) -> tuple[int, int]:
    """(objects, records) under the error prefix; bounded by the bucket's error-record expiry."""
    objects = records = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            if not is_data_object(item["Key"], item["Size"]):
                continue
            body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            if item["Key"].endswith(".gz"):
                body = gzip.decompress(body)
            objects += 1
            records += sum(1 for line in body.splitlines() if line.strip())
    return objects, records


@dg.asset_check(
    asset=gadget_orders_cdc,
    description="Change records that Firehose could not transform (under errors/): should be none.",
)
def no_failed_cdc_records(stack: AwsStackResource) -> dg.AssetCheckResult:
    prefix = static_prefix(stack.error_prefix_template())
    objects, records = count_error_records(stack.client("s3"), stack.outputs["BucketName"], prefix)
    return dg.AssetCheckResult(
        passed=records == 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"failed_records": records, "error_objects": objects, "error_prefix": prefix},
    )


ASSET_CHECKS = [
    order_id_is_unique,
    no_negative_quantity_or_price,
    daily_sales_matches_current_state,
    current_state_reconciles_with_dynamodb,
    no_failed_cdc_records,
]
