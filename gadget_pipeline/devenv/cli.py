"""`dev` (what `make dev` runs) and `demo`: the whole product on one machine.

dev:  local AWS + deploy + live generator and stream + `dagster dev` on 127.0.0.1:3000, until Ctrl-C,
      which stops exactly what this command started (by PID / process group).
demo: the same end to end, headless, for a fixed number of orders; prints the current-state count,
      the daily sales table and the reconciliation result.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gadget_pipeline import config, local_aws
from gadget_pipeline.arguments import positive_number, whole_number
from gadget_pipeline.aws import AwsTarget

DAGSTER_PORT = 3000


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@contextlib.contextmanager
def local_stack(port: int | None = None) -> Iterator[tuple[AwsTarget, dict[str, str]]]:
    """The local AWS up with the stack deployed; stops the server afterwards only if it started it here."""
    from gadget_pipeline.deploy.local import deploy_local

    if config.gadget_env() != "local":
        raise config.ConfigError("dev and demo run on the local AWS: unset GADGET_ENV or set it to 'local'")
    server, started = local_aws.up(port=port or local_aws.DEFAULT_PORT)
    _say(f"local AWS {'started' if started else 'already running'} at {server.endpoint} (pid {server.pid})")
    try:
        target = AwsTarget.local(server.endpoint)
        result = deploy_local(target, progress=lambda line: _say(f"  {line}"))
        _say(f"stack deployed ({len(result.changes)} change(s))" if result.changed else "stack up to date")
        yield target, result.outputs
    finally:
        if started:
            _say(local_aws.down())


def _start_dagster(endpoint: str, port: int) -> subprocess.Popen[bytes]:
    dagster_home = Path(os.environ.get("DAGSTER_HOME", config.REPO_ROOT / ".dagster_home"))
    dagster_home.mkdir(parents=True, exist_ok=True)
    instance_settings = dagster_home / "dagster.yaml"
    if not instance_settings.exists():
        shutil.copyfile(Path(__file__).with_name("dagster.yaml"), instance_settings)
    env = {
        **os.environ,
        "DAGSTER_HOME": str(dagster_home),
        "GADGET_ENV": "local",
        "GADGET_AWS_ENDPOINT": endpoint,
    }
    dagster = Path(sys.executable).with_name("dagster")
    # Own session: `dagster dev` ignores SIGTERM from a plain background start; its group gets the signal.
    return subprocess.Popen(
        [str(dagster), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        cwd=config.REPO_ROOT,
        env=env,
        start_new_session=True,
    )


def stop_process_group(process: subprocess.Popen[bytes], grace: float = 30.0) -> None:
    """SIGTERM to a process started in its own session and all its children; SIGKILL after the grace."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def cmd_dev(args: argparse.Namespace) -> int:
    from gadget_pipeline.ingest.stream import LivePipeline

    # SIGTERM (e.g. from a supervisor) takes the same clean-up path as Ctrl-C.
    signal.signal(signal.SIGTERM, _interrupt)
    with local_stack(args.aws_port) as (target, outputs):
        pipeline = LivePipeline(target, outputs, rate=args.rate, progress=_say, report_every=30.0).start()
        _say(
            f"live pipeline: {args.rate:g} order operations/s -> {outputs['TableName']} -> ... -> "
            f"{outputs['RawLocation']}"
        )
        dagster = None if args.no_ui else _start_dagster(target.endpoint_url or "", args.port)
        if dagster is not None:
            _say(f"Dagster UI: http://127.0.0.1:{args.port} (DAGSTER_HOME={os.environ.get('DAGSTER_HOME')})")
        _say("Ctrl-C stops everything started here")
        try:
            while dagster is None or dagster.poll() is None:
                time.sleep(1)
            _say(f"dagster dev exited with code {dagster.returncode}")
            return dagster.returncode or 1
        except KeyboardInterrupt:
            _say("stopping ...")
            return 0
        finally:
            if dagster is not None:
                stop_process_group(dagster)
            pipeline.stop()


def run_demo(target: AwsTarget, outputs: dict[str, str], *, orders: int, seed: int) -> dict[str, Any]:
    """Generate, stream, crawl, build and check; returns what the demo prints (also used by tests)."""
    import dagster as dg

    from gadget_pipeline.athena import engine_for
    from gadget_pipeline.athena.current_state import CURRENT_STATE_TABLE
    from gadget_pipeline.athena.daily_sales import DAILY_SALES_TABLE
    from gadget_pipeline.definitions import build_definitions
    from gadget_pipeline.ingest.generator import generate
    from gadget_pipeline.ingest.stream import drain_stream

    summary = generate(target, outputs, orders=orders, seed=seed, show_progress=True)
    _say(summary.describe())
    snapshot = drain_stream(target, outputs, progress=_say)
    _say(f"drained: {snapshot.delivered} events in {snapshot.objects} objects")

    os.environ["GADGET_AWS_ENDPOINT"] = target.endpoint_url or ""
    defs = build_definitions("local")
    instance = dg.DagsterInstance.ephemeral()
    graph_job = defs.resolve_implicit_global_asset_job_def()
    _say("materializing gadget_orders_cdc and order_current_state (with their checks) ...")
    runs = [
        graph_job.execute_in_process(
            instance=instance,
            asset_selection=[dg.AssetKey("gadget_orders_cdc"), dg.AssetKey("order_current_state")],
        )
    ]
    engine = engine_for(target, outputs)
    current = {"database": engine.database, "current_state_table": CURRENT_STATE_TABLE}
    days = [str(day) for day in engine.run_sql_file("current_state_order_dates", **current)["order_date"]]
    for day in days:
        _say(f"materializing daily_sales for {day} ...")
        runs.append(
            graph_job.execute_in_process(
                instance=instance, partition_key=day, asset_selection=[dg.AssetKey("daily_sales")]
            )
        )
    checks: dict[str, bool] = {}
    for run in runs:
        for event in run.all_events:
            if event.event_type_value == "ASSET_CHECK_EVALUATION":
                evaluation = event.event_specific_data
                partition = run.dagster_run.tags.get("dagster/partition")
                checks[f"{evaluation.check_name}[{partition}]" if partition else evaluation.check_name] = (
                    evaluation.passed
                )
    unique = engine.run_sql_file("check_current_state_unique_orders", **current)
    daily = {"database": engine.database, "daily_sales_table": DAILY_SALES_TABLE}
    return {
        "current_state_rows": int(unique["row_count"].iloc[0]),
        "daily_sales": engine.run_sql_file("daily_revenue", **daily, since=days[0]) if days else None,
        "checks": checks,
        "days": days,
        "runs_succeeded": all(run.success for run in runs),
    }


def cmd_demo(args: argparse.Namespace) -> int:
    with local_stack(args.aws_port) as (target, outputs):
        result = run_demo(target, outputs, orders=args.orders, seed=args.seed)
    print(f"current state: {result['current_state_rows']} live orders")
    print("daily sales:")
    daily = result["daily_sales"]
    print(daily.to_string(index=False) if daily is not None else "  (no orders)")
    print("checks:")
    for name, passed in sorted(result["checks"].items()):
        print(f"  {'PASS' if passed else 'FAIL'}  {name}")
    return 0 if result["runs_succeeded"] and all(result["checks"].values()) else 1


def register(subparsers: Any) -> None:
    dev = subparsers.add_parser(
        "dev",
        help="local AWS + live pipeline + Dagster UI until Ctrl-C (what `make dev` runs)",
        description="Start the local AWS, deploy the stack, run the live order generator and stream, and "
        "serve the Dagster UI. Ctrl-C stops everything this command started.",
    )
    dev.add_argument(
        "--port",
        type=whole_number("the port", 1, 65535),
        default=DAGSTER_PORT,
        help="Dagster UI port (default 3000)",
    )
    dev.add_argument(
        "--aws-port",
        type=whole_number("the port", 1, 65535),
        default=None,
        help=f"local AWS port (default {local_aws.DEFAULT_PORT})",
    )
    dev.add_argument(
        "--rate",
        type=positive_number("the rate"),
        default=20.0,
        help="order operations per second (default 20)",
    )
    dev.add_argument("--no-ui", action="store_true", help="run the live pipeline without the Dagster UI")
    dev.set_defaults(func=cmd_dev)

    demo = subparsers.add_parser(
        "demo",
        help="the whole pipeline end to end, headless, for a fixed number of orders",
        description="Generate orders, stream them to S3, crawl, build order_current_state and daily_sales "
        "with Dagster, run every asset check, and print the results.",
    )
    demo.add_argument(
        "--orders",
        type=whole_number("the number of orders", minimum=1),
        default=500,
        help="orders to generate (default 500)",
    )
    demo.add_argument(
        "--seed", type=whole_number("the seed", minimum=0), default=7, help="generator seed (default 7)"
    )
    demo.add_argument(
        "--aws-port",
        type=whole_number("the port", 1, 65535),
        default=None,
        help=f"local AWS port (default {local_aws.DEFAULT_PORT})",
    )
    demo.set_defaults(func=cmd_demo)
