"""anvil (npm ``@foundry-rs/anvil``, pinned in tests/clients) as a subprocess on a free port."""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from node_process import free_port, rpc

CLIENTS_DIR = Path(__file__).parent / "clients"
BIN_DIR = CLIENTS_DIR / "node_modules" / ".bin"


def client_binary(name: str) -> str:
    """The path of an npm-installed client binary (``anvil``, ``cast``); ``make test`` installs them."""
    path = BIN_DIR / name
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `make clients` (part of `make test`)")
    return str(path)


def wait_until_serving(url: str, process: subprocess.Popen[bytes], deadline_s: float) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode} before serving")
        with contextlib.suppress(OSError, RuntimeError):
            rpc(url, "eth_chainId", timeout=1.0)
            return
        time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer within {deadline_s} s")


@contextlib.contextmanager
def start_anvil(
    chain_id: int = 31337, block_time: float | None = None, hardfork: str | None = None
) -> Iterator[str]:
    """Yield the RPC URL of a fresh anvil on the standard dev mnemonic; stop it afterwards."""
    port = free_port()
    args = [client_binary("anvil"), "--port", str(port), "--chain-id", str(chain_id), "--silent"]
    if block_time is not None:
        args += ["--block-time", str(block_time)]
    if hardfork is not None:
        args += ["--hardfork", hardfork]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(url, process, deadline_s=30)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


