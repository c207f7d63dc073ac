"""
Run ``parex node`` as a subprocess on free ports, for tests that talk to it over real sockets.

    with start_node(tmp_path / "node") as node:
        w3 = Web3(Web3.HTTPProvider(node.url))

The node runs the dev preset (chain id 31337, the ten standard dev accounts) unless
``extra_args`` say otherwise. ``start_node`` returns once JSON-RPC answers; leaving the
``with`` block stops the node (SIGTERM, then SIGKILL if it does not exit in time).
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
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

READY_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0


def free_port() -> int:
    """A port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rpc(url: str, method: str, params: list[object] | None = None, timeout: float = 10.0) -> object:
    """One JSON-RPC call; returns ``result`` or raises ``RuntimeError`` with the error."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        reply = json.loads(response.read())
    if "error" in reply:
        raise RuntimeError(reply["error"])
    return reply["result"]


@dataclass
class NodeProcess:
    """A running ``parex node``."""

    data_dir: Path
    process: subprocess.Popen[bytes]
    http_port: int
    authrpc_port: int
    jwt_secret_path: Path
    log_path: Path
    args: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def authrpc_url(self) -> str:
        return f"http://127.0.0.1:{self.authrpc_port}"

    def log(self) -> str:
        """What the node printed so far (stdout and stderr)."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a crash."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        """SIGTERM and wait; SIGKILL if the node does not exit in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> NodeProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start_node(
    data_dir: Path,
    *,
    block_time: float = 0.25,
    extra_args: list[str] = [],  # noqa: B006 - never mutated
) -> NodeProcess:
    """Starts ``parex node`` on free ports with its data in ``data_dir``; waits for RPC."""
    data_dir.mkdir(parents=True, exist_ok=True)
    http_port, authrpc_port = free_port(), free_port()
    while authrpc_port == http_port:
        authrpc_port = free_port()
    jwt_secret_path = data_dir / "jwt.hex"
    args = [
        sys.executable,
        "-m",
        "parex",
        "node",
        "--data-dir",
        str(data_dir),
        "--http-port",
        str(http_port),
        "--authrpc-port",
        str(authrpc_port),
        "--block-time",
        str(block_time),
        "--jwt-secret",
        str(jwt_secret_path),
        *extra_args,
    ]
    log_path = data_dir / f"node-{http_port}.log"
    log = open(log_path, "wb")  # noqa: SIM115 - the child writes it for its whole life
    process = subprocess.Popen(
        args, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"}
    )
    log.close()
    node = NodeProcess(data_dir, process, http_port, authrpc_port, jwt_secret_path, log_path, args)
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"parex node exited with {process.returncode}:\n{node.log()}")
        try:
            rpc(node.url, "eth_chainId", timeout=2.0)
            return node
        except (OSError, urllib.error.URLError, RuntimeError):
            if time.monotonic() > deadline:
                node.kill()
                raise RuntimeError(f"parex node did not answer within {READY_TIMEOUT}s:\n{node.log()}") from None
            time.sleep(0.05)
