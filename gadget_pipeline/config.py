"""Where things are and which world we talk to: the single environment switch of the product.

`GADGET_ENV=local` (default) talks to a moto server on 127.0.0.1; `GADGET_ENV=aws` to real AWS.
Resource names are *not* configured here: they come from infra/template.yaml and the deployed stack.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

REPO_ROOT = Path(__file__).resolve().parents[1]
TEMPLATE_PATH = REPO_ROOT / "infra" / "template.yaml"
LAMBDA_SOURCE_DIR = REPO_ROOT / "lambdas/gadget_sales_transform"
SQL_DIR = Path(__file__).resolve().parent / "sql"

Environment = Literal["local", "aws"]


class ConfigError(RuntimeError):
    """A setting is missing or wrong; the message says what to do."""


def gadget_env() -> Environment:
    value = os.environ.get("GADGET_ENV", "local").strip().lower()
    if value not in ("local", "aws"):
        raise ConfigError(f"GADGET_ENV must be 'local' or 'aws', not {value!r}")
    return value  # type: ignore[return-value]


def state_dir() -> Path:
    """Git-ignored folder for the local AWS server's PID/endpoint and runner checkpoints."""
    path = Path(os.environ.get("GADGET_STATE_DIR", REPO_ROOT / ".gadget"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def region() -> str:
    return os.environ.get("GADGET_AWS_REGION") or os.environ.get("AWS_REGION") or "us-east-1"


def stack_name() -> str:
    return os.environ.get("GADGET_STACK_NAME", "gadget-pipeline")
