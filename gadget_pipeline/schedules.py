"""Schedules: yesterday's daily sales after midnight UTC, and a periodic safety-net refresh."""

import dagster as dg

from gadget_pipeline import config, jobs


def build_schedules(environment: str | None = None) -> list:
    environment = environment or config.gadget_env()
    status = dg.DefaultScheduleStatus.RUNNING if environment == "local" else dg.DefaultScheduleStatus.STOPPED
    return [
        # A daily partitioned job's schedule targets the day that just ended: at 00:15 UTC, yesterday.
        dg.build_schedule_from_partitioned_job(
            jobs.daily_sales_job,
            name="daily_sales_for_yesterday",
            hour_of_day=0,
            minute_of_hour=15,
            default_status=status,
            description="Finalize yesterday's sales once late events have landed.",
        ),
        dg.ScheduleDefinition(
            name="current_state_safety_net",
            job=jobs.refresh_current_state_job,
            cron_schedule="*/30 * * * *",
            execution_timezone="UTC",
            default_status=status,
            description="Refresh the current state every 30 minutes even if a sensor tick was missed.",
        ),
    ]
