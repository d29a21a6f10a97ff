"""The Dagster code location: every asset, check, job, sensor, schedule and resource, assembled here.

Loaded by `dagster dev -w workspace.yaml`. GADGET_ENV (local | aws) decides the resources, nothing else.
"""

from __future__ import annotations

import dagster as dg

from gadget_pipeline import config, jobs
from gadget_pipeline.assets import daily_sales, gadget_orders_cdc, order_current_state, raw_cdc_files
from gadget_pipeline.checks import ASSET_CHECKS
from gadget_pipeline.resources import build_resources
from gadget_pipeline.schedules import build_schedules
from gadget_pipeline.sensors import build_sensors


def build_definitions(environment: str | None = None) -> dg.Definitions:
    environment = environment or config.gadget_env()
    return dg.Definitions(
        assets=[raw_cdc_files, gadget_orders_cdc, order_current_state, daily_sales],
        asset_checks=ASSET_CHECKS,
        jobs=[jobs.crawl_raw_cdc_job, jobs.refresh_current_state_job, jobs.daily_sales_job],
        sensors=build_sensors(environment),
        schedules=build_schedules(environment),
        resources=build_resources(environment),
    )


defs = build_definitions()
