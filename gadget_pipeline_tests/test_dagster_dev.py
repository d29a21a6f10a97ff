"""`dagster dev` really starts, loads the code location, and shows the assets, sensors and schedules."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from gadget_pipeline import config
from gadget_pipeline_tests.conftest import free_port

QUERY = """
{ workspaceOrError { __typename ... on Workspace { locationEntries { name
    locationOrLoadError { __typename
      ... on RepositoryLocation { repositories { name
          assetNodes { assetKey { path } }
          sensors { name sensorState { status } }
          schedules { name scheduleState { status } } } }
      ... on PythonError { message } } } } } }
"""


def _graphql(port: int) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": QUERY}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (loopback)
        return json.loads(response.read())


@pytest.mark.slow
def test_dagster_dev_serves_the_code_location(tmp_path: Path, moto_endpoint: str) -> None:
    port = free_port()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(tmp_path),
        "GADGET_ENV": "local",
        "GADGET_AWS_ENDPOINT": moto_endpoint,
    }
    dagster = Path(sys.executable).with_name("dagster")
    log = open(tmp_path / "dagster-dev.log", "wb")  # noqa: SIM115 (closed below)
    # Own session, so the whole tree (webserver, daemon, code server) is stopped through its group.
    process = subprocess.Popen(
        [str(dagster), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        cwd=config.REPO_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        repositories = None
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and process.poll() is None:
            try:
                entries = _graphql(port)["data"]["workspaceOrError"]["locationEntries"]
                location = entries[0]["locationOrLoadError"]
                if location and location["__typename"] == "RepositoryLocation":
                    repositories = location["repositories"]
                    break
                assert not location or location["__typename"] != "PythonError", location
            except OSError:
                pass
            time.sleep(1)
        assert repositories, (tmp_path / "dagster-dev.log").read_text()[-3000:]
        repository = repositories[0]
        assets = {"/".join(node["assetKey"]["path"]) for node in repository["assetNodes"]}
        assert {"raw_cdc_files", "gadget_orders_cdc", "order_current_state", "daily_sales"} <= assets
        sensors = {sensor["name"]: sensor["sensorState"]["status"] for sensor in repository["sensors"]}
        assert sensors["raw_cdc_files_sensor"] == "RUNNING"
        assert sensors["gadget_automation_sensor"] == "RUNNING"
        schedules = {s["name"]: s["scheduleState"]["status"] for s in repository["schedules"]}
        assert schedules == {"daily_sales_for_yesterday": "RUNNING", "current_state_safety_net": "RUNNING"}
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()
