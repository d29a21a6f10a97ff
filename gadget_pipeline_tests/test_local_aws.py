"""`gadget-pipeline local up|status|down` against a real moto server process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from gadget_pipeline import local_aws
from gadget_pipeline.cli import main
from gadget_pipeline_tests.conftest import free_port


@pytest.fixture
def own_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GADGET_STATE_DIR", str(tmp_path))
    return tmp_path


def test_up_status_down_happy_path(own_state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    try:
        assert main(["local", "up", "--port", str(port)]) == 0
        state = local_aws.read_state()
        assert state is not None and state.port == port
        assert local_aws.is_serving(state.endpoint)
        assert "started" in capsys.readouterr().out

        # Idempotent: a second `up` finds the same server and starts nothing.
        assert main(["local", "up", "--port", str(port)]) == 0
        assert "already running" in capsys.readouterr().out
        assert local_aws.read_state() == state

        assert main(["local", "status"]) == 0
        assert f"running: {state.endpoint} (pid {state.pid}" in capsys.readouterr().out
    finally:
        assert main(["local", "down"]) == 0
    assert f"stopped the local AWS (pid {state.pid}" in capsys.readouterr().out
    assert not local_aws.is_serving(state.endpoint)
    assert not (own_state / local_aws.STATE_FILE).exists()
    with pytest.raises(ProcessLookupError):
        os.kill(state.pid, 0)
    assert main(["local", "status"]) == 1
    assert "stopped" in capsys.readouterr().out


def test_busy_port_is_a_clear_error(own_state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        assert main(["local", "up", "--port", str(port)]) == 1
    progress, err = capsys.readouterr().err.strip().splitlines()
    assert progress.startswith("starting the local AWS")
    assert (
        err == f"gadget-pipeline local: error: port {port} on 127.0.0.1 is in use by another process; "
        "pick another with --port"
    )
    assert local_aws.read_state() is None


def test_stale_state_file_is_detected_and_replaced(
    own_state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    port = free_port()
    stale = {
        "pid": dead.pid,
        "port": port,
        "endpoint": f"http://127.0.0.1:{port}",
        "started_at": 0.0,
        "log_file": str(own_state / "moto-server.log"),
    }
    (own_state / local_aws.STATE_FILE).write_text(json.dumps(stale))

    assert main(["local", "status"]) == 1
    assert "stale" in capsys.readouterr().out

    assert main(["local", "down"]) == 0
    assert "removed a stale state file" in capsys.readouterr().out
    assert local_aws.read_state() is None

    (own_state / local_aws.STATE_FILE).write_text(json.dumps(stale))
    try:
        assert main(["local", "up", "--port", str(port)]) == 0
        fresh = local_aws.read_state()
        assert fresh is not None and fresh.pid != dead.pid and local_aws.is_serving(fresh.endpoint)
    finally:
        local_aws.down()


def test_unreadable_state_file(own_state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (own_state / local_aws.STATE_FILE).write_text("{not json")
    assert main(["local", "status"]) == 1
    assert "unreadable" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["local", "up", "--port", "70000"], "port must be between 1 and 65535"),
        (["local", "up", "--port", "abc"], "port must be a whole number"),
        (["local", "sideways"], "invalid choice: 'sideways'"),
        (["deploy", "--target", "mars"], "invalid choice: 'mars'"),
        (["deploy", "--param", "novalue"], "expected KEY=VALUE"),
    ],
)
def test_bad_arguments_get_one_line_and_exit_2(argv, fragment, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and fragment in err
