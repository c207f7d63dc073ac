"""
Raw JSON-RPC against a running node: batches, geth's error codes and messages, and bad input
of every kind, after which the node still serves.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from eth_account import Account
from node_process import NodeProcess, rpc

DEV_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
DEV_ADDRESS = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"


def post(url: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url, body, {"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as e:
        raw = e.read()
        return e.code, json.loads(raw) if raw else None


def call(url: str, method: str, *params: Any) -> dict[str, Any]:
    status, reply = post(url, json.dumps({"jsonrpc": "2.0", "id": 7, "method": method, "params": list(params)}).encode())
    assert status == 200
    assert reply["id"] == 7
    return reply  # type: ignore[no-any-return]


def still_serving(url: str) -> None:
    assert rpc(url, "eth_chainId") == "0x7a69"


def test_batch_and_unknown_method(parex_node: NodeProcess) -> None:
    body = json.dumps(
        [
            {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"},
            {"jsonrpc": "2.0", "id": 2, "method": "eth_nope", "params": []},
            {"jsonrpc": "2.0", "id": 3, "method": "net_version"},
            {"jsonrpc": "2.0", "method": "eth_chainId"},  # a notification: no answer
            5,
        ]
    ).encode()
    status, replies = post(parex_node.url, body)
    assert status == 200
    by_id = {r["id"]: r for r in replies}
    assert by_id[1]["result"] == "0x7a69"
    assert by_id[2]["error"] == {"code": -32601, "message": "the method eth_nope does not exist/is not available"}
    assert by_id[3]["result"] == "31337"
    assert by_id[None]["error"]["code"] == -32600
    assert len(replies) == 4
    status, reply = post(parex_node.url, b"[]")
    assert reply["error"]["code"] == -32600


def test_malformed_and_oversized(parex_node: NodeProcess) -> None:
    status, reply = post(parex_node.url, b'{"jsonrpc": "2.0", "id": 1, "method": ')
    assert status == 200 and reply["error"]["code"] == -32700
    status, reply = post(parex_node.url, b"\xff\xfe")
    assert reply["error"]["code"] == -32700
    status, reply = post(parex_node.url, json.dumps({"jsonrpc": "2.0", "id": 1, "method": 5}).encode())
    assert reply["error"]["code"] == -32600
    status, reply = post(parex_node.url, json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_getBalance", "params": "x"}).encode())
    assert reply["error"]["code"] == -32602
    status, reply = post(parex_node.url, b"[" * 200_000)
    assert status == 200 and reply["error"]["code"] == -32700
    status, reply = post(parex_node.url, b" " * (6 * 1024 * 1024))
    assert status == 413 and "too large" in reply["error"]["message"]
    still_serving(parex_node.url)


def test_wrong_param_types(parex_node: NodeProcess) -> None:
    url = parex_node.url
    cases = [
        ("eth_getBalance", ["0x1234", "latest"], "address"),
        ("eth_getBalance", [5, "latest"], "address"),
        ("eth_getBalance", [DEV_ADDRESS, "yesterday"], "block tag"),
        ("eth_getBlockByNumber", ["0xzz", False], "quantity"),
        ("eth_getTransactionByHash", ["0x12"], "32 bytes"),
        ("eth_getStorageAt", [DEV_ADDRESS, "slot", "latest"], "slot"),
        ("eth_call", ["not an object", "latest"], "call object"),
        ("eth_call", [{"to": DEV_ADDRESS, "gas": "lots"}, "latest"], "gas"),
        ("eth_sendRawTransaction", [], "missing value"),
        ("eth_feeHistory", ["0x2", "latest", [90, 10]], "ascending"),
    ]
    for method, params, needle in cases:
        reply = call(url, method, *params)
        assert reply["error"]["code"] == -32602, (method, reply)
        assert reply["error"]["message"].startswith("invalid argument"), reply
        assert needle in reply["error"]["message"], (needle, reply)
    still_serving(url)


def test_bad_transactions(parex_node: NodeProcess) -> None:
    url = parex_node.url
    reply = call(url, "eth_sendRawTransaction", "0x02deadbeef")
    assert reply["error"]["code"] == -32000 and "invalid transaction" in reply["error"]["message"]
    account = Account.from_key(DEV_KEY)
    signed = account.sign_transaction(
        {"to": DEV_ADDRESS, "value": 1, "gas": 21_000, "maxFeePerGas": 10**10,
         "maxPriorityFeePerGas": 10**9, "chainId": 31337, "nonce": 0}
    )
    raw = bytearray(signed.raw_transaction)
    raw[-5] ^= 0xFF  # corrupt s: the signature no longer recovers to the key
    reply = call(url, "eth_sendRawTransaction", "0x" + bytes(raw).hex())
    assert reply["error"]["code"] == -32000
    # Either the signature is rejected or it recovers to a stranger without funds.
    assert any(m in reply["error"]["message"] for m in ("invalid sender", "insufficient funds")), reply
    legacy_wrong_chain = account.sign_transaction(
        {"to": DEV_ADDRESS, "value": 1, "gas": 21_000, "gasPrice": 10**10, "chainId": 5, "nonce": 0}
    )
    reply = call(url, "eth_sendRawTransaction", "0x" + legacy_wrong_chain.raw_transaction.hex())
    assert "invalid chain id" in reply["error"]["message"]
    # A replacement must pay more.
    first = account.sign_transaction(
        {"to": DEV_ADDRESS, "value": 1, "gas": 21_000, "maxFeePerGas": 10**10,
         "maxPriorityFeePerGas": 10**9, "chainId": 31337, "nonce": 5}
    )
    again = account.sign_transaction(
        {"to": DEV_ADDRESS, "value": 2, "gas": 21_000, "maxFeePerGas": 10**10,
         "maxPriorityFeePerGas": 10**9, "chainId": 31337, "nonce": 5}
    )
    assert "result" in call(url, "eth_sendRawTransaction", "0x" + first.raw_transaction.hex())
    reply = call(url, "eth_sendRawTransaction", "0x" + first.raw_transaction.hex())
    assert reply["error"]["message"] == "already known"
    reply = call(url, "eth_sendRawTransaction", "0x" + again.raw_transaction.hex())
    assert reply["error"]["message"] == "replacement transaction underpriced"
    still_serving(url)


def test_nonce_gap_is_held_back(parex_node: NodeProcess) -> None:
    """A transaction behind a nonce gap waits in the pool until the gap is filled."""
    import time

    url = parex_node.url
    account = Account.create()
    fund = Account.from_key(DEV_KEY).sign_transaction(
        {"to": account.address, "value": 10**18, "gas": 21_000, "maxFeePerGas": 10**10,
         "maxPriorityFeePerGas": 10**9, "chainId": 31337,
         "nonce": int(rpc(url, "eth_getTransactionCount", [DEV_ADDRESS, "pending"]), 16)}  # type: ignore[arg-type]
    )
    funded = rpc(url, "eth_sendRawTransaction", ["0x" + fund.raw_transaction.hex()])
    while rpc(url, "eth_getTransactionReceipt", [funded]) is None:
        time.sleep(0.05)

    def tx(nonce: int) -> str:
        signed = account.sign_transaction(
            {"to": DEV_ADDRESS, "value": 1, "gas": 21_000, "maxFeePerGas": 10**10,
             "maxPriorityFeePerGas": 10**9, "chainId": 31337, "nonce": nonce}
        )
        return str(rpc(url, "eth_sendRawTransaction", ["0x" + signed.raw_transaction.hex()]))

    later = tx(1)
    assert rpc(url, "eth_getTransactionCount", [account.address, "pending"]) == "0x0"
    head = int(rpc(url, "eth_blockNumber"), 16)  # type: ignore[arg-type]
    while int(rpc(url, "eth_blockNumber"), 16) < head + 3:  # type: ignore[arg-type]
        time.sleep(0.05)
    assert rpc(url, "eth_getTransactionReceipt", [later]) is None
    pending = rpc(url, "eth_getTransactionByHash", [later])
    assert isinstance(pending, dict) and pending["blockHash"] is None
    first = tx(0)
    assert rpc(url, "eth_getTransactionCount", [account.address, "pending"]) == "0x2"
    deadline = time.monotonic() + 30
    while rpc(url, "eth_getTransactionReceipt", [later]) is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    a = rpc(url, "eth_getTransactionReceipt", [first])
    b = rpc(url, "eth_getTransactionReceipt", [later])
    assert isinstance(a, dict) and isinstance(b, dict)
    assert (int(a["blockNumber"], 16), int(a["transactionIndex"], 16)) < (
        int(b["blockNumber"], 16), int(b["transactionIndex"], 16))


def test_historical_state_is_refused_clearly(parex_node: NodeProcess) -> None:
    reply = call(parex_node.url, "eth_getBalance", DEV_ADDRESS, "0x0")
    head = int(rpc(parex_node.url, "eth_blockNumber"), 16)  # type: ignore[arg-type]
    if head > 0:
        assert reply["error"]["code"] == -32000
        assert "historical state" in reply["error"]["message"]
    reply = call(parex_node.url, "eth_getBalance", DEV_ADDRESS, hex(10**9))
    assert "not found" in reply["error"]["message"]
