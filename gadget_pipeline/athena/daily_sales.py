"""Build one day of gadget_sales.daily_sales, idempotently -- the unit a Dagster daily partition runs.

Why delete-the-day-then-INSERT and not a CTAS of the whole table: a daily partition must be rebuildable
on its own, without touching (or re-reading) the other days. Athena cannot DELETE from or overwrite a
Hive table, but one day is one folder, `daily_sales/order_date=YYYY-MM-DD/`. So:

1. make sure the partitioned table exists (daily_sales_table.sql: CREATE EXTERNAL TABLE IF NOT EXISTS);
2. empty that day's folder (S3 delete: Athena never deletes data itself);
3. INSERT INTO the table the day's aggregate (daily_sales.sql), which writes the day's Parquet into
   the folder and registers the partition if it is new.

Running it twice gives the same folder contents; a failed run is repaired by running it again. Readers
may see the day empty for the moment between steps 2 and 3.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date

from gadget_pipeline.athena.current_state import CURRENT_STATE_TABLE
from gadget_pipeline.athena.engine import AthenaEngine
from gadget_pipeline.athena.errors import SqlParameterError
from gadget_pipeline.athena.sql_text import sql_identifier
from gadget_pipeline.catalog.s3 import as_folder, clear_prefix

DAILY_SALES_TABLE = "daily_sales"


@dataclass(frozen=True)
class DailySalesBuild:
    order_date: date
    location: str  # the day's folder
    objects_replaced: int  # objects deleted from the folder before the insert
    rows: int | None  # product/brand/category/currency rows of the day
    duration_seconds: float


def daily_sales_location(outputs: dict[str, str]) -> str:
    return f"{as_folder(outputs['CuratedLocation'])}{DAILY_SALES_TABLE}/"


def build_daily_sales_partition(engine: AthenaEngine, order_date: date | str, *,
                                count_rows: bool = True) -> DailySalesBuild:
    """(Re)build daily_sales for one order date from order_current_state."""
    started = time.monotonic()
    day = _as_date(order_date)
    database = engine.database
    table_location = daily_sales_location(engine.outputs)
    engine.run_sql_file("daily_sales_table", database=database, target_table=DAILY_SALES_TABLE,
                        target_location=table_location)
    day_location = _partition_location(engine, table_location, day)
    replaced = clear_prefix(engine.target.client("s3"), day_location)
    engine.run_sql_file("daily_sales", database=database, target_table=DAILY_SALES_TABLE,
                        current_state_table=CURRENT_STATE_TABLE, order_date=day.isoformat())
    rows = None
    if count_rows:
        table = f"{sql_identifier(database, 'database')}.{DAILY_SALES_TABLE}"
        counted = engine.query(f"SELECT count(*) AS n FROM {table} WHERE order_date = CAST(? AS DATE)",  # noqa: S608
                               [day.isoformat()])
        rows = int(counted["n"].iloc[0])
    return DailySalesBuild(day, day_location, replaced, rows, time.monotonic() - started)


def _as_date(value: date | str) -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError):
        raise SqlParameterError(f"order date must be YYYY-MM-DD, got {value!r}") from None


def _partition_location(engine: AthenaEngine, table_location: str, day: date) -> str:
    """Where the day's rows live: the registered partition's folder, else where INSERT will put them."""
    glue = engine.target.client("glue")
    try:
        partition = glue.get_partition(DatabaseName=engine.database, TableName=DAILY_SALES_TABLE,
                                       PartitionValues=[day.isoformat()])["Partition"]
        return as_folder(partition["StorageDescriptor"]["Location"])
    except glue.exceptions.EntityNotFoundException:
        return f"{table_location}order_date={day.isoformat()}/"
