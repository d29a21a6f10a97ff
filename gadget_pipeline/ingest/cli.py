"""The ``generate`` and ``stream`` verbs of ``gadget-pipeline`` (registered by gadget_pipeline.cli)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from gadget_pipeline import config
from gadget_pipeline.arguments import positive_number, whole_number

order_count = whole_number("the number of orders", minimum=1)
rate = positive_number("the rate (operations per second; 0 = as fast as possible)", allow_zero=True)
seed = whole_number("the seed", minimum=0)


def _stack() -> tuple[Any, dict[str, str]]:
    from gadget_pipeline.aws import AwsTarget
    from gadget_pipeline.stack import stack_outputs

    target = AwsTarget.from_env()
    return target, stack_outputs(target)


def cmd_generate(args: argparse.Namespace) -> int:
    from gadget_pipeline.ingest.generator import generate

    if args.orders is None and not args.continuous:
        raise config.ConfigError("give --orders N, or --continuous to run until stopped")
    target, outputs = _stack()
    if args.continuous:
        print(f"writing orders to {outputs['TableName']} until Ctrl-C ...", file=sys.stderr)
    summary = generate(target, outputs, orders=args.orders, seed=args.seed, rate=args.rate,
                       continuous=args.continuous)
    print(("stopped: " if summary.interrupted else "") + summary.describe())
    return 130 if summary.interrupted and not args.continuous else 0


def cmd_stream(args: argparse.Namespace) -> int:
    from gadget_pipeline.ingest.stream import drain_stream, run_stream

    target, outputs = _stack()
    if args.drain:
        snapshot = drain_stream(target, outputs, progress=_progress)
        print(f"drained: {snapshot.source_read} stream records -> {snapshot.delivered} delivered, "
              f"{snapshot.failed} to errors, {snapshot.dropped} dropped, in "
              f"{snapshot.objects} objects (+{snapshot.error_objects} error objects), "
              f"{snapshot.elapsed:.1f}s")
        return 0
    print("streaming DynamoDB -> Kinesis -> S3 until Ctrl-C ...", file=sys.stderr)
    snapshot = run_stream(target, outputs, progress=_progress)
    print(f"stopped: {snapshot.describe()}")
    return 0


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def register(subparsers: Any) -> None:
    """Add ``generate`` and ``stream`` to the ``gadget-pipeline`` verbs."""
    generate = subparsers.add_parser(
        "generate",
        help="write gadget orders (inserts, updates, deletes) to the orders table",
        description="Write a realistic, reproducible order lifecycle to the deployed orders table: orders "
                    "are placed, a share later ship (some with a quantity edit first) and get delivered, a "
                    "share are cancelled (deleted). The same --seed gives the same operations.",
    )
    generate.add_argument("--orders", type=order_count, metavar="N",
                          help="orders to place (required unless --continuous)")
    generate.add_argument("--rate", type=rate, default=0.0, metavar="R",
                          help="operations per second (default 0: as fast as possible)")
    generate.add_argument("--seed", type=seed, default=None, metavar="S",
                          help="seed for a reproducible run (default: a fresh one, printed at the end)")
    generate.add_argument("--continuous", action="store_true",
                          help="run until Ctrl-C with live timestamps (with --orders: stop after N orders)")
    generate.set_defaults(func=cmd_generate)

    stream = subparsers.add_parser(
        "stream",
        help="run the local pipe and Firehose: DynamoDB stream -> Kinesis -> S3",
        description="Run the local EventBridge Pipes and Firehose runtimes against the local AWS, with the "
                    "settings of the deployed pipe and delivery stream, resuming from their checkpoints.",
    )
    stream.add_argument("--drain", action="store_true",
                        help="deliver everything written so far, flush all buffers, then exit")
    stream.set_defaults(func=cmd_stream)
