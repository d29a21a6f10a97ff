"""Shared fixtures: a real moto server in its own process, and the stack deployed onto it."""

from __future__ import annotations

import json
import os
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from gadget_pipeline import local_aws
from gadget_pipeline.aws import AwsTarget


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One moto server process for the session, started and stopped by our own launcher."""
    state = tmp_path_factory.mktemp("local-aws-state")
    previous = os.environ.get("GADGET_STATE_DIR")
    os.environ["GADGET_STATE_DIR"] = str(state)
    try:
        server, _ = local_aws.up(port=free_port())
        yield server.endpoint
    finally:
        local_aws.down()
        if previous is None:
            os.environ.pop("GADGET_STATE_DIR", None)
        else:
            os.environ["GADGET_STATE_DIR"] = previous


def reset_moto(endpoint: str) -> None:
    request = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST", data=b"")
    with urllib.request.urlopen(request, timeout=10):  # noqa: S310 (loopback)
        pass


@pytest.fixture
def aws(moto_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AwsTarget:
    """An empty local AWS for one test (the shared server, reset), with its own state folder."""
    reset_moto(moto_endpoint)
    monkeypatch.setenv("GADGET_ENV", "local")
    monkeypatch.setenv("GADGET_AWS_ENDPOINT", moto_endpoint)
    monkeypatch.setenv("GADGET_STATE_DIR", str(tmp_path / "state"))
    return AwsTarget.local(moto_endpoint)


@pytest.fixture
def deployed(aws: AwsTarget) -> dict[str, str]:
    """infra/template.yaml deployed onto the fresh local AWS; returns the stack outputs."""
    from gadget_pipeline.deploy.local import deploy_local

    result = deploy_local(aws, progress=lambda _line: None)
    return result.outputs


def dumps(obj: object) -> str:
    return json.dumps(obj, sort_keys=True, default=str)
