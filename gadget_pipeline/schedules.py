"""Schedules: yesterday's daily sales after midnight UTC, and a periodic safety-net refresh."""

from datetime import timedelta

import dagster as dg

from gadget_pipeline import config, jobs


def yesterday_partition(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """The day that just ended. (Today's partition exists too, for live sales, so 'latest' is not it.)"""
    day = (context.scheduled_execution_time - timedelta(days=1)).date().isoformat()
    return dg.RunRequest(run_key=f"daily_sales:{day}", partition_key=day)


def build_schedules(environment: str | None = None) -> list[dg.ScheduleDefinition]:
    environment = environment or config.gadget_env()
    status = dg.DefaultScheduleStatus.RUNNING if environment == "local" else dg.DefaultScheduleStatus.STOPPED
    return [
        dg.schedule(
            name="daily_sales_for_yesterday",
            job=jobs.daily_sales_job,
            cron_schedule="15 0 * * *",
            execution_timezone="UTC",
            default_status=status,
            description="At 00:15 UTC, finalize yesterday's sales once late events have landed.",
        )(yesterday_partition),
        dg.ScheduleDefinition(
            name="current_state_safety_net",
            job=jobs.refresh_current_state_job,
            cron_schedule="*/30 * * * *",
            execution_timezone="UTC",
            default_status=status,
            description="Refresh the current state every 30 minutes even if a sensor tick was missed.",
        ),
    ]
