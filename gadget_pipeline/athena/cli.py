"""`gadget-pipeline crawl` and `gadget-pipeline query`: the catalog and Athena from the command line.

Both talk to the world GADGET_ENV selects (the local moto server by default, or AWS). Errors -- bad SQL,
an unknown table, a crawl that failed -- end as one line from the main command and a non-zero exit.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import pandas as pd

from gadget_pipeline.arguments import whole_number
from gadget_pipeline.config import ConfigError

FORMATS = ("table", "csv", "json")


def register(subparsers: Any) -> None:
    crawl = subparsers.add_parser(
        "crawl", help="run the Glue crawler over the raw CDC files (locally: our own crawler on moto)",
        description="Run the deployed Glue crawler once and report tables, partitions and schema.",
    )
    crawl.add_argument("--json", action="store_true", help="print the full crawl report as JSON")
    crawl.set_defaults(func=cmd_crawl)

    query = subparsers.add_parser(
        "query", help="run one Athena SQL statement (locally: DuckDB over the Glue catalog)",
        description="Run one Athena (engine v3) SQL statement and print its rows.",
    )
    query.add_argument("sql", help='the statement, e.g. "SELECT * FROM gadget_sales.daily_sales LIMIT 10"')
    query.add_argument("--format", choices=FORMATS, default="table", help="output format (default: table)")
    query.add_argument("--max-rows", type=whole_number("--max-rows", minimum=1), default=1000,
                       help="print at most this many rows (default 1000; the query itself is not limited)")
    query.set_defaults(func=cmd_query)


def cmd_crawl(args: argparse.Namespace) -> int:
    from gadget_pipeline.aws import AwsTarget
    from gadget_pipeline.catalog import crawler_for

    target = AwsTarget.from_env()
    print("crawling the raw CDC files ...", file=sys.stderr, flush=True)
    report = crawler_for(target).crawl()
    if args.json:
        print(json.dumps(_report_dict(report), indent=2, default=str))
    else:
        print(report.summary())
        for table in report.tables:
            print(f"  {report.database}.{table.name} ({table.action}) at {table.location}: "
                  f"{len(table.columns)} columns, {table.partitions_total} partitions "
                  f"({len(table.partitions_added)} new)")
            for column in table.columns + table.partition_keys:
                print(f"    {column.name:<24} {column.type}")
        for reason, count in sorted(report.objects_skipped.items()):
            print(f"  skipped {count} object(s): {reason}")
    return 0 if report.succeeded else 1


def cmd_query(args: argparse.Namespace) -> int:
    from gadget_pipeline.athena import engine_for
    from gadget_pipeline.aws import AwsTarget

    sql = args.sql.strip().rstrip(";").strip()
    if not sql:
        raise ConfigError("query: the SQL statement is empty")
    with engine_for(AwsTarget.from_env()) as engine:
        frame = engine.query(sql)
    print(render(frame, args.format, args.max_rows), end="")
    if len(frame) > args.max_rows:
        print(f"({len(frame)} rows, first {args.max_rows} shown)", file=sys.stderr)
    return 0


def render(frame: pd.DataFrame, output_format: str, max_rows: int | None = None) -> str:
    shown = frame if max_rows is None else frame.head(max_rows)
    if output_format == "csv":
        return shown.to_csv(index=False)
    if output_format == "json":
        records = [{k: _json_value(v) for k, v in row.items()} for row in shown.to_dict(orient="records")]
        return "".join(json.dumps(record, default=str) + "\n" for record in records)
    if shown.empty:
        return "(no rows)\n" if len(shown.columns) else "(done)\n"
    return shown.to_string(index=False) + "\n"


def _json_value(value: Any) -> Any:
    """Decimals as exact text, missing values as null, everything else as JSON would have it."""
    if value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and value != value):
        return None
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if type(value).__name__ == "Decimal":
        return str(value)
    return value


def _report_dict(report: Any) -> dict[str, Any]:
    return {
        "crawler": report.crawler_name, "status": report.status, "database": report.database,
        "duration_seconds": round(report.duration_seconds, 3), "objects_seen": report.objects_seen,
        "objects_sampled": report.objects_sampled, "records_sampled": report.records_sampled,
        "objects_skipped": dict(report.objects_skipped), "message": report.message,
        "tables": [
            {"name": t.name, "action": t.action, "location": t.location, "schema": t.schema,
             "partition_keys": [k.name for k in t.partition_keys],
             "partitions_added": [list(p) for p in t.partitions_added],
             "partitions_total": t.partitions_total, "partitions_missing": t.partitions_missing}
            for t in report.tables
        ],
    }


