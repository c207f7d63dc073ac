"""JSON-RPC over WebSocket: plain calls and eth_subscribe (newHeads, logs, pending)."""

from __future__ import annotations

import json
import time
from typing import Any

from eth_account import Account
from node_process import NodeProcess
from eth_utils.address import to_checksum_address
from websockets.sync.client import connect

from parex import contracts, keccak256

DEV_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"


NOTIFICATIONS: list[dict[str, Any]] = []


def request(ws: Any, method: str, *params: Any, request_id: int = 1) -> Any:
    """One call; notifications that arrive meanwhile are kept for `next_message`."""
    ws.send(json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": list(params)}))
    while True:
        reply = json.loads(ws.recv(timeout=10))
        if reply.get("id") == request_id:
            return reply
        NOTIFICATIONS.append(reply)


def next_message(ws: Any) -> dict[str, Any]:
    if NOTIFICATIONS:
        return NOTIFICATIONS.pop(0)
    return json.loads(ws.recv(timeout=10))  # type: ignore[no-any-return]


def test_subscriptions(parex_node: NodeProcess) -> None:
    url = parex_node.url.replace("http://", "ws://")
    account = Account.from_key(DEV_KEY)
    with connect(url) as ws:
        assert request(ws, "eth_chainId")["result"] == "0x7a69"
        assert request(ws, "eth_nope")["error"]["code"] == -32601
        heads = request(ws, "eth_subscribe", "newHeads", request_id=2)["result"]
        pending = request(ws, "eth_subscribe", "newPendingTransactions", request_id=3)["result"]
        topic = "0x" + keccak256(b"Transfer(address,address,uint256)").hex()
        assert request(ws, "eth_subscribe", "bogus", request_id=4)["error"]["code"] == -32602

        token = contracts.load("Token")
        deploy = account.sign_transaction({"data": token.deploy_data("W", "W"), "gas": 2_000_000, "nonce": 0,
                                           "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 10**9, "chainId": 31337})
        deploy_hash = request(ws, "eth_sendRawTransaction", "0x" + deploy.raw_transaction.hex(), request_id=5)["result"]
        seen_heads: list[dict[str, Any]] = []
        seen_pending: list[str] = []
        receipt = None
        deadline = time.monotonic() + 30
        while receipt is None:
            assert time.monotonic() < deadline
            message = next_message(ws)
            if message.get("method") == "eth_subscription":
                params = message["params"]
                if params["subscription"] == heads:
                    seen_heads.append(params["result"])
                    receipt = request(ws, "eth_getTransactionReceipt", deploy_hash, request_id=6)["result"]
                elif params["subscription"] == pending:
                    seen_pending.append(params["result"])
        assert deploy_hash in seen_pending
        numbers = [int(h["number"], 16) for h in seen_heads]
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))  # in order, none skipped
        assert "baseFeePerGas" in seen_heads[-1] and "transactions" not in seen_heads[-1]

        address = receipt["contractAddress"]
        logs_sub = request(ws, "eth_subscribe", "logs", {"address": address, "topics": [topic]}, request_id=7)["result"]
        data = contracts.encode_call("mintBatch(address[],uint256)", [account.address], 5)
        mint = account.sign_transaction({"to": to_checksum_address(address), "data": data, "gas": 200_000, "nonce": 1,
                                         "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 10**9, "chainId": 31337})
        mint_hash = request(ws, "eth_sendRawTransaction", "0x" + mint.raw_transaction.hex(), request_id=8)["result"]
        while True:
            assert time.monotonic() < deadline
            message = next_message(ws)
            if message.get("method") == "eth_subscription" and message["params"]["subscription"] == logs_sub:
                log = message["params"]["result"]
                break
        assert log["transactionHash"] == mint_hash and log["topics"][0] == topic
        assert request(ws, "eth_unsubscribe", logs_sub, request_id=9)["result"] is True
        assert request(ws, "eth_unsubscribe", logs_sub, request_id=10)["result"] is False
