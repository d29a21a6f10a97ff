"""Partitioning of the curated tables."""

import dagster as dg

# Order dates before this are not expected. end_offset=1: today's partition exists, so today's sales are
# live (eager automation keeps the newest partition current); yesterday is finalized by its schedule.
ORDER_DATE_PARTITIONS = dg.DailyPartitionsDefinition(start_date="2026-01-01", timezone="UTC", end_offset=1)
