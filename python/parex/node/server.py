"""
``parex node``: the sequencer thread and the JSON-RPC server (Starlette on uvicorn).

::

    eth_sendRawTransaction ──► Mempool ──select──► Sequencer (every --block-time)
                                                     │  Chain.build_block:
    RPC readers ◄── Chain (hot State + records) ◄────┘  parex-chain build_block (system
                          │                              calls, Block-STM, requests, roots,
                          │                              sealed header) → ONE redb write
                          └── Store (redb, chain.redb in --data-dir)

One sequencer thread builds blocks; HTTP requests are served on uvicorn's event loop and run
their (short) handlers on Starlette's thread pool. Engine execution, state roots and store
commits release the GIL, so RPC keeps answering while a block is built.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from eth_utils.address import to_checksum_address
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from .. import _core
from .blobs import next_blob_base_fee
from .chain import Chain, ChainError, next_base_fee
from .genesis import DevAccount, Genesis
from .mempool import Mempool
from .rpc import Rpc
from .ws import serve_websocket

MAX_BODY_BYTES = 5 * 1024 * 1024
"""geth's HTTP body limit."""
DRAIN_LIMIT_BYTES = 64 * 1024 * 1024
"""Up to this much of a too-large body is read and dropped before answering 413."""
MAX_BLOCK_TXS = 20_000


@dataclass(frozen=True, slots=True)
class NodeConfig:
    data_dir: Path
    genesis: Genesis
    http_port: int = 8545
    authrpc_port: int = 8551
    block_time: float = 0.25
    jwt_secret: Path | None = None
    threads: int = 2
    host: str = "127.0.0.1"


class Sequencer:
    """Builds a block from the pool every ``block_time`` seconds, on its own thread."""

    def __init__(self, chain: Chain, mempool: Mempool, block_time: float):
        self.chain = chain
        self.mempool = mempool
        self.block_time = block_time
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="parex-sequencer", daemon=True)
        self.error: BaseException | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def _nonce(self, sender: bytes) -> int:
        account = self.chain.state.get_account(sender)
        return 0 if account is None else account[1]

    def seal(self) -> None:
        """Builds one block from the pool now."""
        head = self.chain.head
        with self.chain.lock:
            chosen = self.mempool.select(
                self._nonce,
                next_base_fee(head),
                self.chain.gas_limit,
                MAX_BLOCK_TXS,
                blob_base_fee=next_blob_base_fee(head),
            )
        built = self.chain.build_block([t.raw for t in chosen])
        gone = list(built.block.tx_hashes) + [_core.keccak256(raw) for raw, _ in built.dropped]
        self.mempool.remove(gone)
        for raw, reason in built.dropped:
            print(f"dropped 0x{_core.keccak256(raw).hex()}: {reason}", file=sys.stderr, flush=True)

    def _run(self) -> None:
        next_tick = time.monotonic() + self.block_time
        while not self._stop.is_set():
            delay = next_tick - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                return
            next_tick = max(next_tick + self.block_time, time.monotonic())
            try:
                self.seal()
            except ChainError as e:
                self.error = e
                print(f"sequencer stopped: {e}", file=sys.stderr, flush=True)
                return
            except Exception as e:  # a bug: report it, keep the chain consistent, go on
                print(f"sequencer error: {type(e).__name__}: {e}", file=sys.stderr, flush=True)


def rpc_app(rpc: Rpc) -> Starlette:
    """The HTTP JSON-RPC endpoint (POST /)."""

    async def endpoint(request: Request) -> Response:
        length = request.headers.get("content-length")
        declared_too_large = length is not None and length.isdigit() and int(length) > MAX_BODY_BYTES
        body = bytearray()
        received = 0
        async for chunk in request.stream():
            received += len(chunk)
            if received > DRAIN_LIMIT_BYTES:
                break
            if not declared_too_large and received <= MAX_BODY_BYTES:
                body += chunk
        if declared_too_large or received > MAX_BODY_BYTES:
            # The body was read (up to DRAIN_LIMIT_BYTES) and dropped, so that the client
            # gets the answer instead of a connection reset mid-upload.
            return _too_large()
        from starlette.concurrency import run_in_threadpool

        out = await run_in_threadpool(rpc.handle, bytes(body))
        if out is None:
            return Response(status_code=204)
        return Response(out, media_type="application/json")

    async def health(request: Request) -> Response:
        return JSONResponse({"head": rpc.chain.head.number})

    async def websocket(ws: WebSocket) -> None:
        await serve_websocket(rpc, ws)

    return Starlette(
        routes=[
            Route("/", endpoint, methods=["POST"]),
            WebSocketRoute("/", websocket),
            Route("/health", health, methods=["GET"]),
        ]
    )


def _too_large() -> Response:
    return JSONResponse(
        {
            "jsonrpc": "2.0",
            "id": None,
            "error": {"code": -32600, "message": f"request body too large: at most {MAX_BODY_BYTES} bytes"},
        },
        status_code=413,
    )


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the node stops both servers itself."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _server(app: Any, host: str, port: int) -> _Server:
    return _Server(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_keep_alive=30,
        )
    )


def print_banner(config: NodeConfig, chain: Chain, accounts: tuple[DevAccount, ...]) -> None:
    lines = [f"parex node: chain id {chain.chain_id}, head block {chain.head.number}, data in {config.data_dir}"]
    if accounts:
        lines.append("")
        lines.append("Available accounts (mnemonic: test test test test test test test test test test test junk)")
        for i, account in enumerate(accounts):
            lines.append(f"({i}) {to_checksum_address(account.address)}  private key 0x{account.secret.hex()}")
        lines.append("")
    lines.append(f"JSON-RPC on http://{config.host}:{config.http_port}")
    if config.authrpc_port:
        lines.append(f"Engine API on http://{config.host}:{config.authrpc_port} (JWT)")
    if config.block_time > 0:
        lines.append(f"Sequencer: a block every {config.block_time}s")
    else:
        lines.append("Sequencer off: blocks come through the Engine API")
    print("\n".join(lines), flush=True)


RECURSION_LIMIT = 1_000
"""Python's default. py_ecc (imported by eth-account) raises the process's limit to 100,000,
at which a deeply nested JSON body overflows the C stack of a server thread (a segfault)
before json raises RecursionError; the node restores the default."""


def run_node(config: NodeConfig) -> None:
    """Runs the node until SIGINT or SIGTERM."""
    sys.setrecursionlimit(RECURSION_LIMIT)
    chain = Chain.open(config.data_dir, config.genesis, threads=config.threads)
    mempool = Mempool(chain.chain_id, chain.gas_limit)
    accounts = config.genesis.dev_accounts
    rpc = Rpc(chain, mempool, accounts)
    sequencer = Sequencer(chain, mempool, config.block_time) if config.block_time > 0 else None
    servers = [_server(rpc_app(rpc), config.host, config.http_port)]
    engine_api = None
    if config.authrpc_port:
        from .engine_api import EngineApi, engine_app

        engine_api = engine_app(
            EngineApi(chain, mempool, rpc), config.jwt_secret or config.data_dir / "jwt.hex"
        )
        servers.append(_server(engine_api, config.host, config.authrpc_port))

    async def main() -> None:
        loop = asyncio.get_running_loop()

        def stop() -> None:
            for server in servers:
                server.should_exit = True

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop)
        tasks = [asyncio.create_task(s.serve()) for s in servers]
        while not all(s.started for s in servers):
            if any(t.done() for t in tasks):
                stop()
                break
            await asyncio.sleep(0.01)
        else:
            print_banner(config, chain, accounts)
            if sequencer is not None:
                sequencer.start()
        await asyncio.gather(*tasks, return_exceptions=True)

    try:
        asyncio.run(main())
    finally:
        if sequencer is not None:
            sequencer.stop()
    if not all(s.started for s in servers):
        raise SystemExit(f"parex node: could not listen on {config.host}:{config.http_port}/{config.authrpc_port}")
