"""Sensors: react to new Firehose objects under the raw prefix.

Each tick lists only the hour folders of a short lookback window, after the last key seen in each
(cost independent of history), reports a runless materialization of `raw_cdc_files`, and requests a
crawl only when the new objects bring a partition Glue does not know or a column the table lacks;
otherwise it requests a refresh of the current state. Run keys derive from the newest key, so a retried
tick cannot start the same work twice.
"""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from gadget_pipeline import config, jobs
from gadget_pipeline.athena.current_state import raw_table_name
from gadget_pipeline.raw_objects import ListingStats, RawCursor, RawObject, list_new_objects, static_prefix
from gadget_pipeline.resources import AwsStackResource

LOOKBACK_HOURS = 2
_SAMPLE_BYTES = 256 * 1024


def _default_status(environment: str) -> dg.DefaultSensorStatus:
    # Locally `make dev` shows a live pipeline without clicking; on AWS an operator switches them on.
    return dg.DefaultSensorStatus.RUNNING if environment == "local" else dg.DefaultSensorStatus.STOPPED


def missing_partitions(glue: Any, database: str, table: str, partitions: list[str]) -> list[str] | None:
    """Which of these hive partitions Glue lacks; None when the table itself does not exist yet."""
    try:
        glue.get_table(DatabaseName=database, Name=table)
    except glue.exceptions.EntityNotFoundException:
        return None
    wanted = {partition: [part.split("=", 1)[1] for part in partition.split("/")] for partition in partitions}
    found: set[tuple[str, ...]] = set()
    values = list(wanted.values())
    for start in range(0, len(values), 1000):
        response = glue.batch_get_partition(
            DatabaseName=database,
            TableName=table,
            PartitionsToGet=[{"Values": v} for v in values[start : start + 1000]],
        )
        found |= {tuple(p["Values"]) for p in response.get("Partitions", [])}
    return sorted(partition for partition, v in wanted.items() if tuple(v) not in found)


def table_columns(glue: Any, database: str, table: str) -> set[str]:
    descriptor = glue.get_table(DatabaseName=database, Name=table)["Table"]["StorageDescriptor"]
    return {column["Name"].lower() for column in descriptor.get("Columns", [])}


def sample_columns(s3: Any, bucket: str, obj: RawObject) -> set[str]:
    """Top-level keys of the first JSON line of one object: enough to notice a new attribute."""
    body = s3.get_object(Bucket=bucket, Key=obj.key, Range=f"bytes=0-{_SAMPLE_BYTES - 1}")["Body"].read()
    if obj.key.endswith(".gz"):
        body = gzip.decompress(s3.get_object(Bucket=bucket, Key=obj.key)["Body"].read())
    first_line = body.split(b"\n", 1)[0]
    try:
        record = json.loads(first_line)
    except ValueError:
        return set()
    return {key.lower() for key in record} if isinstance(record, dict) else set()


def evaluate_raw_cdc_files(context: dg.SensorEvaluationContext, stack: AwsStackResource) -> dg.SensorResult:
    """One tick of raw_cdc_files_sensor."""
    outputs = stack.outputs
    bucket = outputs["BucketName"]
    prefix_template = stack.raw_prefix_template()
    stats = ListingStats()
    cursor = RawCursor.from_json(context.cursor)
    new_objects, next_cursor = list_new_objects(
        stack.client("s3"), bucket, prefix_template, cursor, datetime.now(UTC), LOOKBACK_HOURS, stats
    )
    if not new_objects:
        return dg.SensorResult(
            skip_reason=f"no new objects ({stats.list_calls} list calls)", cursor=next_cursor.to_json()
        )

    glue = stack.client("glue")
    database, table = outputs["GlueDatabaseName"], raw_table_name(outputs)
    partitions = sorted({obj.partition for obj in new_objects})
    missing = missing_partitions(glue, database, table, partitions)
    newest = max(new_objects, key=lambda obj: obj.key)
    new_columns: set[str] = set()
    if missing == []:
        new_columns = sample_columns(stack.client("s3"), bucket, newest) - table_columns(
            glue, database, table
        )
    needs_crawl = missing is None or bool(missing) or bool(new_columns)

    materialization = dg.AssetMaterialization(
        asset_key="raw_cdc_files",
        description=f"{len(new_objects)} new Firehose object(s) under {static_prefix(prefix_template)}",
        metadata={
            "new_objects": len(new_objects),
            "new_bytes": sum(obj.size for obj in new_objects),
            "partitions": dg.MetadataValue.json(partitions),
            "newest_key": newest.key,
            "s3_list_calls": stats.list_calls,
            "s3_keys_listed": stats.keys_listed,
        },
    )
    if needs_crawl:
        reason = (
            "table missing"
            if missing is None
            else (f"new partitions {missing}" if missing else f"new columns {sorted(new_columns)}")
        )
        request = dg.RunRequest(
            run_key=f"crawl:{newest.key}", job_name=jobs.crawl_raw_cdc_job.name, tags={"reason": reason[:200]}
        )
    else:
        request = dg.RunRequest(run_key=f"refresh:{newest.key}", job_name=jobs.refresh_current_state_job.name)
    context.log.info(
        "raw sensor: %d new objects in %d partitions, %d list calls, %d keys listed -> %s",
        len(new_objects),
        len(partitions),
        stats.list_calls,
        stats.keys_listed,
        request.job_name,
    )
    return dg.SensorResult(
        run_requests=[request], asset_events=[materialization], cursor=next_cursor.to_json()
    )


def build_sensors(environment: str | None = None) -> list[dg.SensorDefinition]:
    environment = environment or config.gadget_env()
    raw_cdc_files_sensor = dg.sensor(
        name="raw_cdc_files_sensor",
        description="New Firehose objects under raw/: report them, then crawl (new partition or column) "
        "or refresh the current state.",
        minimum_interval_seconds=30,
        jobs=[jobs.crawl_raw_cdc_job, jobs.refresh_current_state_job],
        default_status=_default_status(environment),
    )(evaluate_raw_cdc_files)
    return [
        raw_cdc_files_sensor,
        dg.AutomationConditionSensorDefinition(
            "gadget_automation_sensor",
            target=dg.AssetSelection.all(),
            default_status=_default_status(environment),
            minimum_interval_seconds=30,
            description="Eager automation: rebuilds tables whose upstream data changed.",
        ),
    ]
