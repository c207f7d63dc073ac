"""
The Engine API over a real socket with JWT: the call sequences an OP-Stack node and an
Evolve node make (build, get, insert, forkchoice), invalid payloads, and refused tokens.
A second node fed the first node's blocks through newPayload ends on the same state root.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from eth_account import Account
from node_process import NodeProcess, rpc, start_node

DEV_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
DEV_ADDRESS = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
ZERO32 = "0x" + "00" * 32
BEACON_ROOT = "0x" + "ab" * 32


@pytest.fixture
def driven(tmp_path: Path) -> Iterator[NodeProcess]:
    """A node without its own sequencer: blocks come through the Engine API only."""
    with start_node(tmp_path / "node", block_time=0) as node:
        yield node


def token(node: NodeProcess, iat: float | None = None, secret: bytes | None = None) -> str:
    key = secret if secret is not None else bytes.fromhex(node.jwt_secret_path.read_text().strip())
    return jwt.encode({"iat": int(time.time() if iat is None else iat)}, key, algorithm="HS256")


def engine(node: NodeProcess, method: str, *params: Any, auth: str | None = "ok") -> dict[str, Any]:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}).encode()
    headers = {"Content-Type": "application/json"}
    if auth == "ok":
        headers["Authorization"] = f"Bearer {token(node)}"
    elif auth is not None:
        headers["Authorization"] = auth
    request = urllib.request.Request(node.authrpc_url, body, headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            reply: dict[str, Any] = json.loads(response.read())
            reply["http_status"] = response.status
            return reply
    except urllib.error.HTTPError as e:
        reply = json.loads(e.read())
        reply["http_status"] = e.code
        return reply


def transfer(nonce: int, value: int = 1, chain_id: int = 31337) -> str:
    signed = Account.from_key(DEV_KEY).sign_transaction(
        {"to": "0xEeeeeEeeeEeEeeEeEeEeeEEEeeeeEeeeeeeeEEeE", "value": value, "gas": 21_000, "maxFeePerGas": 10**10,
         "maxPriorityFeePerGas": 10**9, "chainId": chain_id, "nonce": nonce}
    )
    return "0x" + signed.raw_transaction.hex()


def head(node: NodeProcess) -> dict[str, Any]:
    block = rpc(node.url, "eth_getBlockByNumber", ["latest", False])
    assert isinstance(block, dict)
    return block


def attributes(parent: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "timestamp": hex(int(parent["timestamp"], 16) + 2),
        "prevRandao": "0x" + "11" * 32,
        "suggestedFeeRecipient": "0x" + "fe" * 20,
        "withdrawals": [],
        "parentBeaconBlockRoot": BEACON_ROOT,
        **extra,
    }


def build(node: NodeProcess, version: int = 3, **extra: Any) -> dict[str, Any]:
    """forkchoiceUpdated with attributes, then getPayload: the sequencer's half."""
    parent = head(node)
    fcu = engine(node, "engine_forkchoiceUpdatedV3",
                 {"headBlockHash": parent["hash"], "safeBlockHash": parent["hash"],
                  "finalizedBlockHash": ZERO32}, attributes(parent, **extra))
    assert fcu["result"]["payloadStatus"]["status"] == "VALID", fcu
    payload_id = fcu["result"]["payloadId"]
    got = engine(node, f"engine_getPayloadV{version}", payload_id)
    return got["result"]  # type: ignore[no-any-return]


def insert(node: NodeProcess, payload: dict[str, Any], version: int = 3) -> dict[str, Any]:
    """newPayload then forkchoiceUpdated to it: the validator's half."""
    params: list[Any] = [payload, [], BEACON_ROOT]
    if version == 4:
        params.append([])
    status = engine(node, f"engine_newPayloadV{version}", *params)["result"]
    if status["status"] == "VALID":
        fcu = engine(node, "engine_forkchoiceUpdatedV3",
                     {"headBlockHash": payload["blockHash"], "safeBlockHash": payload["blockHash"],
                      "finalizedBlockHash": ZERO32})
        assert fcu["result"]["payloadStatus"]["status"] == "VALID", fcu
    return status  # type: ignore[no-any-return]


def test_op_stack_sequence(driven: NodeProcess) -> None:
    """op-node as sequencer: forced transactions in the attributes, noTxPool, gasLimit."""
    capabilities = engine(driven, "engine_exchangeCapabilities", ["engine_newPayloadV3"])["result"]
    assert "engine_forkchoiceUpdatedV3" in capabilities
    tx = transfer(0, 5)
    built = build(driven, transactions=[tx], noTxPool=True, gasLimit=hex(25_000_000))
    payload = built["executionPayload"]
    assert payload["transactions"] == [tx]
    assert int(payload["gasLimit"], 16) == 25_000_000
    assert int(built["blockValue"], 16) == 21_000 * 10**9
    status = insert(driven, payload)
    assert status == {"status": "VALID", "latestValidHash": payload["blockHash"], "validationError": None}
    block = head(driven)
    assert block["hash"] == payload["blockHash"] and block["parentBeaconBlockRoot"] == BEACON_ROOT
    assert rpc(driven.url, "eth_getBalance", ["0xEeeeeEeeeEeEeeEeEeEeeEEEeeeeEeeeeeeeEEeE", "latest"]) == "0x5"
    # Inserting it again is idempotent.
    assert insert(driven, payload)["status"] == "VALID"
    # op-node reads blocks through the engine port as well.
    assert engine(driven, "eth_getBlockByNumber", "latest", False)["result"]["hash"] == payload["blockHash"]
    # V4 (Prague) round trip, with the empty execution requests.
    built = build(driven, version=4, transactions=[transfer(1)], noTxPool=True)
    assert built["executionRequests"] == []
    assert insert(driven, built["executionPayload"], version=4)["status"] == "VALID"


def test_evolve_sequence(driven: NodeProcess) -> None:
    """An Evolve node pulls the pool (txpoolExt_getTxs) and passes the transactions in."""
    hashes = [rpc(driven.url, "eth_sendRawTransaction", [transfer(n)]) for n in (0, 1, 2)]
    # A transaction behind a nonce gap is not handed out.
    rpc(driven.url, "eth_sendRawTransaction", [transfer(7)])
    txs = engine(driven, "txpoolExt_getTxs")["result"]
    assert len(txs) == 3
    built = build(driven, transactions=txs, noTxPool=True)
    assert insert(driven, built["executionPayload"])["status"] == "VALID"
    for tx_hash in hashes:
        receipt = rpc(driven.url, "eth_getTransactionReceipt", [tx_hash])
        assert isinstance(receipt, dict) and receipt["status"] == "0x1"
    assert engine(driven, "txpoolExt_getTxs")["result"] == []
    # Without noTxPool the builder takes pool transactions itself.
    rpc(driven.url, "eth_sendRawTransaction", [transfer(3)])
    built = build(driven)
    assert len(built["executionPayload"]["transactions"]) == 1


def test_invalid_payloads(driven: NodeProcess) -> None:
    payload = build(driven, transactions=[transfer(0)], noTxPool=True)["executionPayload"]
    parent = head(driven)

    bad_hash = {**payload, "blockHash": "0x" + "12" * 32}
    status = insert(driven, bad_hash)
    assert status["status"] == "INVALID" and "blockhash mismatch" in status["validationError"]

    orphan = {**payload, "parentHash": "0x" + "34" * 32, "blockHash": "0x" + "56" * 32}
    status = insert(driven, orphan)
    assert status["status"] == "INVALID" and "unknown parent" in status["validationError"]

    wrong_chain = {**payload, "transactions": [transfer(0, chain_id=1)], "blockHash": "0x" + "78" * 32}
    status = insert(driven, wrong_chain)
    assert status["status"] == "INVALID" and "invalid transaction" in status["validationError"]

    gap = {**payload, "transactions": [transfer(9)], "blockHash": "0x" + "9a" * 32}
    status = insert(driven, gap)
    assert status["status"] == "INVALID" and "nonce" in status["validationError"]

    wrong_root = {**payload, "stateRoot": "0x" + "bc" * 32}
    status = insert(driven, wrong_root)
    assert status["status"] == "INVALID" and "state root mismatch" in status["validationError"]

    assert head(driven)["hash"] == parent["hash"]  # nothing was committed
    assert insert(driven, payload)["status"] == "VALID"

    unknown = engine(driven, "engine_getPayloadV3", "0x0102030405060708")
    assert unknown["error"]["code"] == -38001
    stale = engine(driven, "engine_forkchoiceUpdatedV3",
                   {"headBlockHash": parent["hash"], "safeBlockHash": ZERO32, "finalizedBlockHash": ZERO32})
    assert stale["error"]["code"] == -38002
    syncing = engine(driven, "engine_forkchoiceUpdatedV3",
                     {"headBlockHash": "0x" + "77" * 32, "safeBlockHash": ZERO32, "finalizedBlockHash": ZERO32})
    assert syncing["result"]["payloadStatus"]["status"] == "SYNCING"
    late = engine(driven, "engine_forkchoiceUpdatedV3",
                  {"headBlockHash": payload["blockHash"], "safeBlockHash": ZERO32, "finalizedBlockHash": ZERO32},
                  attributes(head(driven), timestamp=payload["timestamp"]))
    assert late["error"]["code"] == -38003


def test_jwt_is_required(driven: NodeProcess) -> None:
    for auth in (None, "Bearer nonsense", f"Bearer {token(driven, secret=b'x' * 32)}",
                 f"Bearer {token(driven, iat=time.time() - 120)}",
                 f"Bearer {token(driven, iat=time.time() + 120)}"):
        reply = engine(driven, "engine_exchangeCapabilities", [], auth=auth)
        assert reply["http_status"] == 401, auth
        assert "result" not in reply
    assert engine(driven, "engine_exchangeCapabilities", [])["http_status"] == 200


def test_validator_follows_sequencer(tmp_path: Path) -> None:
    """Blocks the built-in sequencer made, fed to a second node, give the same chain."""
    with start_node(tmp_path / "a", block_time=0.05) as sequencer, start_node(tmp_path / "b", block_time=0) as validator:
        hashes = [rpc(sequencer.url, "eth_sendRawTransaction", [transfer(n, 1 + n)]) for n in range(20)]
        while rpc(sequencer.url, "eth_getTransactionReceipt", [hashes[-1]]) is None:
            time.sleep(0.05)
        last = int(rpc(sequencer.url, "eth_blockNumber"), 16)  # type: ignore[arg-type]
        for number in range(1, last + 1):
            block = rpc(sequencer.url, "eth_getBlockByNumber", [hex(number), True])
            assert isinstance(block, dict)
            payload = {
                "parentHash": block["parentHash"], "feeRecipient": block["miner"],
                "stateRoot": block["stateRoot"], "receiptsRoot": block["receiptsRoot"],
                "logsBloom": block["logsBloom"], "prevRandao": block["mixHash"],
                "blockNumber": block["number"], "gasLimit": block["gasLimit"], "gasUsed": block["gasUsed"],
                "timestamp": block["timestamp"], "extraData": block["extraData"],
                "baseFeePerGas": block["baseFeePerGas"], "blockHash": block["hash"],
                "transactions": [rpc(sequencer.url, "eth_getRawTransactionByHash", [t["hash"]])
                                 for t in block["transactions"]],
                "withdrawals": [], "blobGasUsed": block["blobGasUsed"], "excessBlobGas": block["excessBlobGas"],
            }
            params = [payload, [], block["parentBeaconBlockRoot"]]
            status = engine(validator, "engine_newPayloadV3", *params)["result"]
            assert status["status"] == "VALID", (number, status)
        assert head(validator)["stateRoot"] == rpc(sequencer.url, "eth_getBlockByNumber", [hex(last), False])["stateRoot"]  # type: ignore[index]
