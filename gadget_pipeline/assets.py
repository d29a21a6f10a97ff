"""Assets, in the order the data flows: raw CDC files -> crawled raw table -> current state -> daily sales."""

from datetime import date, timedelta
from decimal import Decimal

import dagster as dg
import pandas as pd

from gadget_pipeline.athena.current_state import CURRENT_STATE_TABLE, refresh_order_current_state
from gadget_pipeline.athena.daily_sales import DAILY_SALES_TABLE, build_daily_sales_partition
from gadget_pipeline.athena.engine import AthenaEngine
from gadget_pipeline.partitions import ORDER_DATE_PARTITIONS
from gadget_pipeline.resources import AthenaResource, GlueCrawlerResource

GROUP = "gadget_sales_analytics"
CHART_DAYS = 14

raw_cdc_files = dg.AssetSpec(
    "raw_cdc_files",
    group_name=GROUP,
    kinds={"s3", "json"},
    description=(
        "Every insert, update and delete of an order, as Firehose lands them in S3 under "
        "raw/gadget_orders_cdc/year=/month=/day=/hour=/ (one JSON line per change; written outside Dagster, "
        "reported by the raw_cdc_files_sensor)."
    ),
    # Orders change all day: no new change files for 30 minutes means the stream has stalled.
    freshness_policy=dg.FreshnessPolicy.time_window(
        fail_window=timedelta(minutes=30), warn_window=timedelta(minutes=10)
    ),
)


@dg.asset(
    group_name=GROUP,
    deps=[raw_cdc_files],
    kinds={"glue"},
    description=(
        "The Glue table gadget_sales.gadget_orders_cdc over the raw change files: the crawler adds new hour "
        "partitions and new columns so Athena sees every landed change."
    ),
)
def gadget_orders_cdc(
    context: dg.AssetExecutionContext, crawler: GlueCrawlerResource
) -> dg.MaterializeResult:
    report = crawler.crawl()
    context.log.info(report.summary())
    if not report.succeeded:
        raise dg.Failure(description=report.summary())
    table = report.tables[0] if report.tables else None
    metadata: dict[str, object] = {
        "crawl_status": report.status,
        "duration_seconds": round(report.duration_seconds, 3),
        "partitions_added": report.partitions_added,
        "tables_created": dg.MetadataValue.json(list(report.tables_created)),
        "tables_updated": dg.MetadataValue.json(list(report.tables_updated)),
        "objects_skipped": dg.MetadataValue.json(dict(report.objects_skipped)),
    }
    if report.objects_seen is not None:
        metadata["objects_seen"] = report.objects_seen
    if table is not None:
        metadata["dagster/column_schema"] = dg.TableSchema(
            columns=[dg.TableColumn(name, kind) for name, kind in table.schema.items()]
        )
        metadata["partitions_total"] = table.partitions_total
        metadata["schema_changed"] = table.schema_changed
    return dg.MaterializeResult(metadata=metadata)


class CurrentStateConfig(dg.Config):
    full_rebuild: bool = False  # re-read all raw partitions instead of merging the new ones


@dg.asset(
    group_name=GROUP,
    deps=[gadget_orders_cdc],
    kinds={"athena", "parquet"},
    pool="order_current_state",  # builds swap Glue tables: one at a time (limit set on the instance)
    automation_condition=dg.AutomationCondition.eager(),
    description=(
        "One row per live order: its latest change (greatest sequence number). Deleted orders are absent; "
        "duplicated or out-of-order deliveries change nothing. Money is exact DECIMAL."
    ),
)
def order_current_state(
    context: dg.AssetExecutionContext, config: CurrentStateConfig, athena: AthenaResource
) -> dg.MaterializeResult:
    engine = athena.engine
    build = refresh_order_current_state(engine, mode="full" if config.full_rebuild else "auto")
    context.log.info(f"{build.mode} build {build.build_id}: {build.live_orders} live orders")
    preview = engine.run_sql_file(
        "current_state_preview", database=engine.database, current_state_table=CURRENT_STATE_TABLE
    )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": build.live_orders or 0,
            "removed_orders": build.removed_orders or 0,
            "build_mode": build.mode,
            "build_id": build.build_id,
            "orders_rewritten": build.rows_written or 0,
            "order_dates_rewritten": build.dates_rewritten,
            "location": build.location,
            "raw_watermark": build.raw_watermark or "",
            "duration_seconds": round(build.duration_seconds, 3),
            "dagster/column_schema": _table_schema(engine, CURRENT_STATE_TABLE),
            "preview": dg.MetadataValue.md(_markdown(preview)),
        }
    )


@dg.asset(
    group_name=GROUP,
    deps=[order_current_state],
    partitions_def=ORDER_DATE_PARTITIONS,
    kinds={"athena", "parquet"},
    automation_condition=dg.AutomationCondition.eager(),
    description=(
        "Sales per order date and product/brand: orders, units and revenue (exact DECIMAL) of the live, "
        "non-cancelled orders placed that day. One partition per day, each rebuilt on its own."
    ),
)
def daily_sales(context: dg.AssetExecutionContext, athena: AthenaResource) -> dg.MaterializeResult:
    engine = athena.engine
    day = date.fromisoformat(context.partition_key)
    build = build_daily_sales_partition(engine, day)
    tables = {"database": engine.database, "daily_sales_table": DAILY_SALES_TABLE}
    rows = engine.run_sql_file("daily_sales_day", **tables, order_date=day.isoformat())
    since = day - timedelta(days=CHART_DAYS - 1)
    recent = engine.run_sql_file("daily_revenue", **tables, since=since.isoformat())
    revenue = sum(rows["revenue"], Decimal("0")) if len(rows) else Decimal("0")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": build.rows or 0,
            "orders": int(rows["orders"].sum()) if len(rows) else 0,
            "units": int(rows["units"].sum()) if len(rows) else 0,
            "revenue": str(revenue),  # exact text; charts below
            "objects_replaced": build.objects_replaced,
            "top_products": dg.MetadataValue.md(_markdown(rows.head(10))),
            "daily_revenue_chart": dg.MetadataValue.md(revenue_chart(recent)),
        }
    )


def revenue_chart(frame: pd.DataFrame, width: int = 40) -> str:
    """A bar chart of revenue per day as Markdown (renders in the Dagster UI's metadata panel)."""
    if frame.empty:
        return "_no sales yet_"
    peak = max(frame["revenue"])
    lines = ["| order date | currency | revenue | |", "|---|---|---:|---|"]
    for row in frame.itertuples(index=False):
        bar = "█" * (int(row.revenue / peak * width) if peak > 0 else 0)
        lines.append(f"| {row.order_date} | {row.currency} | {row.revenue} | {bar} |")
    return "\n".join(lines)


def _markdown(frame: pd.DataFrame | None) -> str:
    if frame is None or frame.empty:
        return "_empty_"
    return frame.to_markdown(index=False)  # tabulate comes with dagster


def _table_schema(engine: AthenaEngine, table: str) -> dg.TableSchema:
    """The table's columns as the Glue catalog has them (the same on AWS and locally)."""
    glue = engine.target.client("glue")
    described = glue.get_table(DatabaseName=engine.database, Name=table)["Table"]
    columns = described["StorageDescriptor"]["Columns"] + described.get("PartitionKeys", [])
    return dg.TableSchema(columns=[dg.TableColumn(column["Name"], column["Type"]) for column in columns])
