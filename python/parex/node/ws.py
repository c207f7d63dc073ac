"""
JSON-RPC over WebSocket on the HTTP port (as anvil serves both on one port), with
``eth_subscribe`` / ``eth_unsubscribe``: ``newHeads``, ``logs`` (with a filter) and
``newPendingTransactions``. Other methods are answered by the same dispatcher as HTTP.

Each connection follows the chain from its own task: it checks the head every
``POLL_SECONDS`` and pushes what is new in block order, so a slow client never stalls the
sequencer.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.websockets import WebSocket, WebSocketDisconnect

from .rpc import LogFilter, Rpc, RpcError

POLL_SECONDS = 0.02
MAX_SUBSCRIPTIONS = 64


@dataclass
class Subscription:
    kind: str
    log_filter: LogFilter | None
    cursor: int


async def serve_websocket(rpc: Rpc, websocket: WebSocket) -> None:
    await websocket.accept()
    subscriptions: dict[str, Subscription] = {}
    next_id = 0
    send_lock = asyncio.Lock()

    async def send(payload: Any) -> None:
        async with send_lock:
            await websocket.send_text(json.dumps(payload, separators=(",", ":")))

    async def push() -> None:
        while True:
            await asyncio.sleep(POLL_SECONDS)
            head = rpc.chain.head.number
            for sub_id, sub in list(subscriptions.items()):
                if sub.kind == "newPendingTransactions":
                    fresh = [t for t in rpc.mempool.pending() if t.seq > sub.cursor]
                    if fresh:
                        sub.cursor = fresh[-1].seq
                    for tx in fresh:
                        await send(_notification(sub_id, "0x" + tx.hash.hex()))
                    continue
                while sub.cursor < head:
                    sub.cursor += 1
                    record = await run_in_threadpool(rpc.chain.block, sub.cursor)
                    if record is None:
                        break
                    if sub.kind == "newHeads":
                        header = rpc._block_json(record, False)
                        del header["transactions"]
                        await send(_notification(sub_id, header))
                    else:
                        assert sub.log_filter is not None
                        logs = await run_in_threadpool(rpc._logs, sub.log_filter, record.number, record.number)
                        for log in logs:
                            await send(_notification(sub_id, log))

    pusher = asyncio.create_task(push())
    try:
        while True:
            text = await websocket.receive_text()
            try:
                request = json.loads(text)
            except (json.JSONDecodeError, RecursionError) as e:
                await send({"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": f"parse error: {e}"}})
                continue
            method = request.get("method") if isinstance(request, dict) else None
            request_id = request.get("id") if isinstance(request, dict) else None
            if method == "eth_subscribe":
                try:
                    params = request.get("params") or []
                    kind = params[0] if params else None
                    if kind not in ("newHeads", "logs", "newPendingTransactions"):
                        raise RpcError(-32602, f"invalid argument 0: unsupported subscription {kind!r}")
                    if len(subscriptions) >= MAX_SUBSCRIPTIONS:
                        raise RpcError(-32000, f"too many subscriptions (at most {MAX_SUBSCRIPTIONS})")
                    log_filter = rpc._parse_filter(params[1:]) if kind == "logs" else None
                    pending = rpc.mempool.pending()
                    cursor = (pending[-1].seq if pending else -1) if kind == "newPendingTransactions" else rpc.chain.head.number
                    next_id += 1
                    sub_id = hex(next_id)
                    subscriptions[sub_id] = Subscription(kind, log_filter, cursor)
                    await send({"jsonrpc": "2.0", "id": request_id, "result": sub_id})
                except RpcError as e:
                    await send({"jsonrpc": "2.0", "id": request_id, "error": e.to_json()})
            elif method == "eth_unsubscribe":
                params = request.get("params") or []
                removed = bool(params) and subscriptions.pop(str(params[0]), None) is not None
                await send({"jsonrpc": "2.0", "id": request_id, "result": removed})
            else:
                reply = await run_in_threadpool(rpc.handle, text.encode())
                if reply is not None:
                    async with send_lock:
                        await websocket.send_text(reply.decode())
    except WebSocketDisconnect:
        pass
    finally:
        pusher.cancel()


def _notification(sub_id: str, result: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "method": "eth_subscription", "params": {"subscription": sub_id, "result": result}}
