"""`gadget-pipeline`: run, develop and test the CDC pipeline, locally or on AWS.

Every verb has --help, exits non-zero with one clear line on bad input, and reports progress on long work.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from botocore.exceptions import BotoCoreError, ClientError

from gadget_pipeline import config, local_aws
from gadget_pipeline.arguments import whole_number

EXIT_BAD_INPUT = 2


class OneLineParser(argparse.ArgumentParser):
    """argparse prints usage + error; we print one line that says what is wrong and where to look."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


port_number = whole_number("port", 1, 65535)


# --------------------------------------------------------------------------- local


def cmd_local(args: argparse.Namespace) -> int:
    if args.action == "up":
        print(f"starting the local AWS (moto server) on 127.0.0.1:{args.port} ...", file=sys.stderr)
        state, started = local_aws.up(port=args.port)
        verb = "started" if started else "already running:"
        print(f"local AWS {verb} {state.endpoint} (pid {state.pid}, log {state.log_file})")
        return 0
    if args.action == "down":
        print(local_aws.down())
        return 0
    current, state = local_aws.status()
    if current == "running" and state is not None:
        print(f"running: {state.endpoint} (pid {state.pid}, log {state.log_file})")
        return 0
    if current == "stale" and state is not None:
        print(
            f"stale: state file names pid {state.pid} at {state.endpoint}, which is not answering; "
            "run `gadget-pipeline local down` then `local up`"
        )
        return 1
    print("stopped: run `gadget-pipeline local up`")
    return 1


# --------------------------------------------------------------------------- deploy


def cmd_deploy(args: argparse.Namespace) -> int:
    from gadget_pipeline.aws import AwsTarget

    overrides = dict(args.param or [])
    if args.target == "local":
        from gadget_pipeline.deploy.local import deploy_local

        target = AwsTarget.local(_local_endpoint())
        result = deploy_local(target, parameters=overrides, stack_name=args.stack_name, progress=_progress)
        if result.changed:
            print(
                f"deployed stack {args.stack_name or config.stack_name()} to {target.endpoint_url}: "
                f"{len(result.changes)} change(s)"
            )
        else:
            print(
                f"no changes: stack {args.stack_name or config.stack_name()} on {target.endpoint_url} "
                "already matches infra/template.yaml"
            )
        _print_outputs(result.outputs)
        return 0

    from gadget_pipeline.deploy.aws import deploy_aws

    if not args.artifact_bucket:
        raise config.ConfigError("--artifact-bucket is required with --target aws (an existing S3 bucket)")
    if args.bucket:
        overrides["BucketName"] = args.bucket
    target = AwsTarget(endpoint_url=None)
    aws_result = deploy_aws(
        target.client("cloudformation"),
        target.client("s3"),
        stack_name=args.stack_name or config.stack_name(),
        artifact_bucket=args.artifact_bucket,
        parameters=overrides,
        progress=_progress,
    )
    print(f"stack {aws_result.stack_name}: {'updated' if aws_result.changed else 'no changes'}")
    _print_outputs(aws_result.outputs)
    return 0


def _local_endpoint() -> str:
    from gadget_pipeline.aws import local_endpoint

    return local_endpoint()


def _progress(line: str) -> None:
    print(f"  {line}", file=sys.stderr, flush=True)


def _print_outputs(outputs: dict[str, str]) -> None:
    width = max((len(key) for key in outputs), default=0)
    for key in sorted(outputs):
        print(f"  {key:<{width}}  {outputs[key]}")


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="gadget-pipeline", description=__doc__.splitlines()[0])
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", parser_class=OneLineParser)
    verbs.required = True

    local = verbs.add_parser("local", help="start, stop or inspect the local AWS (a moto server)")
    local.add_argument("action", choices=["up", "down", "status"])
    local.add_argument(
        "--port",
        type=port_number,
        default=local_aws.DEFAULT_PORT,
        help=f"port for `up` (default {local_aws.DEFAULT_PORT}, env GADGET_LOCAL_PORT)",
    )
    local.set_defaults(func=cmd_local)

    deploy = verbs.add_parser("deploy", help="deploy infra/template.yaml to the local AWS or to AWS")
    deploy.add_argument("--target", choices=["local", "aws"], default="local")
    deploy.add_argument(
        "--param",
        type=key_value,
        action="append",
        metavar="KEY=VALUE",
        help="override a template parameter (repeatable)",
    )
    deploy.add_argument("--stack-name", default=None, help="default: GADGET_STACK_NAME or gadget-pipeline")
    deploy.add_argument("--bucket", help="with --target aws: the data bucket name (globally unique)")
    deploy.add_argument("--artifact-bucket", help="with --target aws: existing bucket for the Lambda zip")
    deploy.set_defaults(func=cmd_deploy)

    from gadget_pipeline.athena import cli as athena_cli
    from gadget_pipeline.devenv import cli as devenv_cli
    from gadget_pipeline.ingest import cli as ingest_cli

    ingest_cli.register(verbs)
    athena_cli.register(verbs)
    devenv_cli.register(verbs)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (config.ConfigError, local_aws.LocalAwsError) as error:
        print(f"gadget-pipeline {args.verb}: error: {error}", file=sys.stderr)
        return 1
    except (ClientError, BotoCoreError) as error:
        print(f"gadget-pipeline {args.verb}: AWS error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
