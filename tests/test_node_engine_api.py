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
from _payload import requests_hash, resealed
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


def insert(
    node: NodeProcess, payload: dict[str, Any], version: int = 3, requests: list[str] | None = None
) -> dict[str, Any]:
    """newPayload then forkchoiceUpdated to it: the validator's half."""
    params: list[Any] = [payload, [], BEACON_ROOT]
    if version == 4:
        params.append(requests or [])
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
    # The header rule lets the gas limit move by less than 1/1024 a block: the builder steps
    # toward the requested limit (as geth's CalcGasLimit does).
    assert int(payload["gasLimit"], 16) == 30_000_000 - (30_000_000 // 1024 - 1)
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

    # Every payload below carries its correct block hash (re-sealed independently of
    # parex), so the node must reject it for what was changed, naming the rule.
    orphan = resealed(payload, BEACON_ROOT, parentHash="0x" + "34" * 32)
    status = insert(driven, orphan)
    assert status["status"] == "INVALID" and status["latestValidHash"] is None
    assert "unknown parent 0x" + "34" * 32 in status["validationError"]

    wrong_chain = resealed(payload, BEACON_ROOT, transactions=[transfer(0, chain_id=1)])
    status = insert(driven, wrong_chain)
    assert status["status"] == "INVALID" and status["latestValidHash"] == parent["hash"]
    assert "TransactionException" in status["validationError"], status

    gap = resealed(payload, BEACON_ROOT, transactions=[transfer(9)])
    status = insert(driven, gap)
    assert status["status"] == "INVALID" and "NONCE_MISMATCH_TOO_HIGH" in status["validationError"], status

    wrong_root = resealed(payload, BEACON_ROOT, stateRoot="0x" + "bc" * 32)
    status = insert(driven, wrong_root)
    assert status["status"] == "INVALID" and "INVALID_STATE_ROOT" in status["validationError"], status

    wrong_fee = resealed(payload, BEACON_ROOT, baseFeePerGas=hex(int(payload["baseFeePerGas"], 16) + 1))
    status = insert(driven, wrong_fee)
    assert status["status"] == "INVALID" and "INVALID_BASEFEE_PER_GAS" in status["validationError"], status

    # newPayloadV3's versioned hashes must be the blob transactions' (here: none).
    stray = engine(driven, "engine_newPayloadV3", payload, ["0x01" + "00" * 31], BEACON_ROOT)["result"]
    assert stray["status"] == "INVALID" and "blob versioned hashes" in stray["validationError"], stray

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


BEACON_ROOTS = "0x000F3df6D732807Ef1319fB7B8bB8522d0Beac02"
HISTORY_STORAGE = "0x0000F90827F1C53a10cb7A02335B175320002935"
WITHDRAWAL_REQUESTS = "0x00000961Ef480Eb55e80D19ad83579A64c007002"
EMPTY_ROOT = "0x56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421"
HISTORY_SERVE_WINDOW = 8191


def storage(node: NodeProcess, address: str, slot: int) -> int:
    value = rpc(node.url, "eth_getStorageAt", [address, hex(slot), "latest"])
    assert isinstance(value, str)
    return int(value, 16)


def test_prague_system_calls_run_before_the_transactions(tmp_path: Path) -> None:
    """EIP-4788 and EIP-2935 on blocks built through the Engine API and by the sequencer: the
    beacon root is stored under the block's timestamp, the parent hash under its number."""
    with start_node(tmp_path / "engine", block_time=0) as driven:
        parent = head(driven)
        payload = build(driven, noTxPool=True)["executionPayload"]
        assert insert(driven, payload)["status"] == "VALID"
        timestamp, number = int(payload["timestamp"], 16), int(payload["blockNumber"], 16)
        ring = timestamp % HISTORY_SERVE_WINDOW
        assert storage(driven, BEACON_ROOTS, ring) == timestamp
        assert storage(driven, BEACON_ROOTS, ring + HISTORY_SERVE_WINDOW) == int(BEACON_ROOT, 16)
        assert storage(driven, HISTORY_STORAGE, (number - 1) % HISTORY_SERVE_WINDOW) == int(parent["hash"], 16)
        # The contract answers get(timestamp) with the root, as a beacon-root consumer asks.
        answer = rpc(driven.url, "eth_call", [{"to": BEACON_ROOTS, "data": "0x" + timestamp.to_bytes(32, "big").hex()}, "latest"])
        assert answer == BEACON_ROOT
    with start_node(tmp_path / "sequencer", block_time=0.05) as sequencer:
        while int(rpc(sequencer.url, "eth_blockNumber"), 16) < 3:  # type: ignore[arg-type]
            time.sleep(0.05)
        block = rpc(sequencer.url, "eth_getBlockByNumber", ["0x2", False])
        first = rpc(sequencer.url, "eth_getBlockByNumber", ["0x1", False])
        assert isinstance(block, dict) and isinstance(first, dict)
        assert storage(sequencer, HISTORY_STORAGE, 1) == int(first["hash"], 16) == int(block["parentHash"], 16)
        assert storage(sequencer, BEACON_ROOTS, int(block["timestamp"], 16) % HISTORY_SERVE_WINDOW) == int(block["timestamp"], 16)


def test_withdrawals_credit_their_recipients(tmp_path: Path) -> None:
    """Payload attributes' withdrawals are built in; a second node imports the payload, and
    one whose withdrawal differs (its hash re-sealed) is refused for the state it gives."""
    recipient = "0x" + "c3" * 20
    withdrawals = [{"index": "0x0", "validatorIndex": "0x7", "address": recipient, "amount": hex(5 * 10**9)}]
    with start_node(tmp_path / "a", block_time=0) as builder, start_node(tmp_path / "b", block_time=0) as follower:
        payload = build(builder, withdrawals=withdrawals, noTxPool=True)["executionPayload"]
        assert payload["withdrawals"] == withdrawals
        more = resealed(payload, BEACON_ROOT, withdrawals=[{**withdrawals[0], "amount": hex(6 * 10**9)}])
        status = insert(follower, more)
        assert status["status"] == "INVALID" and "INVALID_STATE_ROOT" in status["validationError"], status
        for node in (builder, follower):
            assert insert(node, payload)["status"] == "VALID"
            assert int(rpc(node.url, "eth_getBalance", [recipient, "latest"]), 16) == 5 * 10**18  # type: ignore[arg-type]
            block = head(node)
            assert block["hash"] == payload["blockHash"]
            assert block["withdrawals"] == withdrawals and block["withdrawalsRoot"] != EMPTY_ROOT


def test_v4_payload_carries_execution_requests(tmp_path: Path) -> None:
    """An EIP-7002 withdrawal request made in a block comes back as an execution request
    (getPayloadV4), its EIP-7685 hash is the header's, and newPayloadV4 checks it."""
    pubkey = bytes(range(48))
    amount = 32 * 10**9
    signed = Account.from_key(DEV_KEY).sign_transaction(
        {"to": WITHDRAWAL_REQUESTS, "value": 1, "gas": 300_000, "maxFeePerGas": 10**10,
         "maxPriorityFeePerGas": 10**9, "chainId": 31337, "nonce": 0,
         "data": "0x" + pubkey.hex() + amount.to_bytes(8, "big").hex()}
    )
    tx = "0x" + signed.raw_transaction.hex()
    with start_node(tmp_path / "a", block_time=0) as builder, start_node(tmp_path / "b", block_time=0) as follower:
        built = build(builder, version=4, transactions=[tx], noTxPool=True)
        payload, requests = built["executionPayload"], built["executionRequests"]
        # EIP-7002: source ++ validator pubkey ++ amount, the amount little-endian (SSZ).
        expected = "0x01" + DEV_ADDRESS[2:].lower() + pubkey.hex() + amount.to_bytes(8, "little").hex()
        assert requests == [expected]
        # The request is in the block hash through the header's requests hash.
        assert resealed(payload, BEACON_ROOT, requests)["blockHash"] == payload["blockHash"]
        # Without its requests the block is another block; re-sealed so, it is refused.
        without = resealed(payload, BEACON_ROOT, [])
        status = insert(follower, without, version=4, requests=[])
        assert status["status"] == "INVALID" and "INVALID_REQUESTS" in status["validationError"], status
        for node in (builder, follower):
            assert insert(node, payload, version=4, requests=requests)["status"] == "VALID"
            assert head(node)["requestsHash"] == "0x" + requests_hash(requests).hex()
