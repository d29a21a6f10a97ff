"""The local AWS: a moto server in its own process on 127.0.0.1, tracked by a git-ignored state file.

`up` is idempotent, `down` stops exactly the PID that `up` recorded, and a stale state file (the server
died, the machine rebooted) is detected and replaced rather than trusted.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from gadget_pipeline import config

DEFAULT_PORT = int(os.environ.get("GADGET_LOCAL_PORT", "4571"))
HOST = "127.0.0.1"
STATE_FILE = "local-aws.json"


class LocalAwsError(RuntimeError):
    """The local AWS could not be started, found or stopped; the message says why."""


@dataclass(frozen=True)
class ServerState:
    pid: int
    port: int
    endpoint: str
    started_at: float
    log_file: str


def state_path() -> Path:
    return config.state_dir() / STATE_FILE


def read_state() -> ServerState | None:
    path = state_path()
    if not path.exists():
        return None
    try:
        return ServerState(**json.loads(path.read_text()))
    except (ValueError, TypeError) as exc:
        raise LocalAwsError(f"state file {path} is unreadable ({exc}); delete it and run `local up`") from exc


def _write_state(state: ServerState) -> None:
    path = state_path()
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(state), indent=2))
    tmp.replace(path)


def is_serving(endpoint: str, timeout: float = 1.0) -> bool:
    """True when a moto server answers its management API at this endpoint."""
    try:
        with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=timeout) as response:  # noqa: S310
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _pid_is_moto(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.exists():
        try:
            return b"moto" in cmdline.read_bytes()
        except OSError:
            return False
    return True  # no /proc (macOS): a live PID is the best we can tell


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return True
    return False


def status() -> tuple[str, ServerState | None]:
    """('running' | 'stopped' | 'stale', state)."""
    state = read_state()
    if state is None:
        return "stopped", None
    if _pid_is_moto(state.pid) and is_serving(state.endpoint):
        return "running", state
    return "stale", state


# moto's server with three equivalent, faster hot paths (see moto_fastpath.py); "moto.server" is stock moto.
SERVER_MODULE = "gadget_pipeline.moto_fastpath"


def up(
    port: int = DEFAULT_PORT, timeout: float = 30.0, server_module: str = SERVER_MODULE
) -> tuple[ServerState, bool]:
    """Start the server unless ours is already running. Returns (state, started_now)."""
    current, state = status()
    if current == "running" and state is not None:
        if state.port != port:
            raise LocalAwsError(
                f"the local AWS is already running on port {state.port} (pid {state.pid}); "
                f"run `gadget-pipeline local down` before starting it on port {port}"
            )
        return state, False
    if current == "stale":
        state_path().unlink(missing_ok=True)
    if not 1 <= port <= 65535:
        raise LocalAwsError(f"port must be between 1 and 65535, not {port}")
    if port_in_use(port):
        raise LocalAwsError(f"port {port} on {HOST} is in use by another process; pick another with --port")

    log_file = config.state_dir() / "moto-server.log"
    with open(log_file, "ab") as log:
        # Own session: Ctrl-C in the caller's terminal does not kill it; `down` does, by PID.
        process = subprocess.Popen(
            [sys.executable, "-m", server_module, "-H", HOST, "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    endpoint = f"http://{HOST}:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise LocalAwsError(
                f"the moto server exited with code {process.returncode} during start-up; see {log_file}"
            )
        if is_serving(endpoint, timeout=0.5):
            state = ServerState(process.pid, port, endpoint, time.time(), str(log_file))
            _write_state(state)
            return state, True
        time.sleep(0.1)
    _terminate(process.pid)
    raise LocalAwsError(f"the moto server did not answer on {endpoint} within {timeout:.0f}s; see {log_file}")


def _terminate(pid: int, grace: float = 5.0) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            finished, _ = os.waitpid(pid, os.WNOHANG)
            if finished == pid:
                return
        except ChildProcessError:  # not our child: poll for its disappearance instead
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return


def down() -> str:
    """Stop the recorded server. Returns what happened, as one line."""
    current, state = status()
    if state is None:
        return "the local AWS is not running"
    if current == "running" or _pid_is_moto(state.pid):
        _terminate(state.pid)
        state_path().unlink(missing_ok=True)
        return f"stopped the local AWS (pid {state.pid}, {state.endpoint})"
    state_path().unlink(missing_ok=True)
    return f"removed a stale state file: pid {state.pid} was no longer a running moto server"
