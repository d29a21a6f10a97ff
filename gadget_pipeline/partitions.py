"""Partitioning of the curated tables."""

import dagster as dg

# Order dates before this are not expected; the generator and the demo write current dates.
ORDER_DATE_PARTITIONS = dg.DailyPartitionsDefinition(start_date="2026-01-01", timezone="UTC")
