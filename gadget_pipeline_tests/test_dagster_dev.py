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
from gadget_pipeline.devenv.cli import stop_process_group
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
        stop_process_group(process)  # the whole group: webserver, daemon, code server
        log.close()


@pytest.mark.slow
def test_dev_runs_the_live_pipeline_and_stops_everything_on_sigterm(tmp_path: Path) -> None:
    """What `make dev` runs: data flows to S3, the UI answers, and SIGTERM (as Ctrl-C) stops all of it."""
    aws_port, ui_port = free_port(), free_port()
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "dagster"), "GADGET_ENV": "local",
           "GADGET_STATE_DIR": str(tmp_path / "state")}
    env.pop("GADGET_AWS_ENDPOINT", None)
    command = [str(Path(sys.executable).with_name("gadget-pipeline")), "dev", "--aws-port", str(aws_port),
               "--port", str(ui_port), "--rate", "50"]
    log = open(tmp_path / "dev.log", "wb")  # noqa: SIM115 (closed below)
    process = subprocess.Popen(command, cwd=config.REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    endpoint = f"http://127.0.0.1:{aws_port}"
    try:
        import boto3

        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="x", aws_secret_access_key="x")
        deadline, landed, ui_up = time.monotonic() + 150, 0, False
        while time.monotonic() < deadline and not (landed and ui_up):
            assert process.poll() is None, (tmp_path / "dev.log").read_text()[-3000:]
            try:
                landed = s3.list_objects_v2(Bucket="gadget-sales-cdc", Prefix="raw/").get("KeyCount", 0)
            except Exception:  # noqa: BLE001 - not deployed yet
                landed = 0
            try:
                ui_up = bool(_graphql(ui_port)["data"]["workspaceOrError"]["locationEntries"])
            except OSError:
                ui_up = False
            time.sleep(2)
        assert landed and ui_up, (tmp_path / "dev.log").read_text()[-3000:]
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()
    assert process.returncode == 0, (tmp_path / "dev.log").read_text()[-3000:]
    from gadget_pipeline import local_aws

    assert not local_aws.is_serving(endpoint)
    with pytest.raises(OSError):
        _graphql(ui_port)


@pytest.mark.parametrize("environment", ["local", "aws"])
def test_dagster_definitions_validate_in_both_environments(environment: str, tmp_path: Path) -> None:
    """`dagster definitions validate -w workspace.yaml`: AWS resources are built without calling AWS."""
    env = {**os.environ, "GADGET_ENV": environment, "DAGSTER_HOME": str(tmp_path),
           "AWS_ACCESS_KEY_ID": "unused", "AWS_SECRET_ACCESS_KEY": "unused"}
    env.pop("GADGET_AWS_ENDPOINT", None)
    dagster = Path(sys.executable).with_name("dagster")
    result = subprocess.run([str(dagster), "definitions", "validate", "-w", "workspace.yaml"],
                            cwd=config.REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All code locations passed validation" in result.stdout + result.stderr
