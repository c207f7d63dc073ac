"""Execution payloads re-sealed in tests: the block hash of a payload's header, computed here
(independently of parex) with the test RLP encoder, so a test can change a payload and keep
its hash valid: the node must then reject it for what was changed, not for the hash."""

from __future__ import annotations

import hashlib
from typing import Any

from _rlp import Item, encode
from eth_utils.crypto import keccak

EMPTY_OMMERS = bytes.fromhex("1dcc4de8dec75d7aab85b567b6ccd41ad312451b948a7413f0a142fd40d49347")


def _qty(value: str) -> bytes:
    number = int(value, 16)
    return number.to_bytes((number.bit_length() + 7) // 8, "big")


def _data(value: str) -> bytes:
    return bytes.fromhex(value[2:])


EMPTY_ROOT = bytes.fromhex("56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421")


def _trie_root(items: list[bytes]) -> bytes:
    """The ordered trie root of at most one item: the empty trie, or one leaf whose path is
    the nibbles of rlp(0) = 0x80 (hex-prefix 0x20: an even leaf path)."""
    if not items:
        return EMPTY_ROOT
    if len(items) > 1:
        raise ValueError("tests re-seal payloads of at most one transaction or withdrawal")
    return keccak(encode([b"\x20\x80", items[0]]))


def block_hash(payload: dict[str, Any], beacon_root: str, requests: list[str] | None = None) -> str:
    """keccak(rlp(header)) of the Prague block a payload describes (``requests``: its
    execution requests; none for a V3 payload)."""
    txs = [_data(t) for t in payload["transactions"]]
    withdrawals: list[Item] = [
        [_qty(w["index"]), _qty(w["validatorIndex"]), _data(w["address"]), _qty(w["amount"])]
        for w in payload["withdrawals"]
    ]
    header: list[Item] = [
        _data(payload["parentHash"]),
        EMPTY_OMMERS,
        _data(payload["feeRecipient"]),
        _data(payload["stateRoot"]),
        _trie_root(txs),
        _data(payload["receiptsRoot"]),
        _data(payload["logsBloom"]),
        b"",
        _qty(payload["blockNumber"]),
        _qty(payload["gasLimit"]),
        _qty(payload["gasUsed"]),
        _qty(payload["timestamp"]),
        _data(payload["extraData"]),
        _data(payload["prevRandao"]),
        bytes(8),
        _qty(payload["baseFeePerGas"]),
        _trie_root([encode(w) for w in withdrawals]),
        _qty(payload["blobGasUsed"]),
        _qty(payload["excessBlobGas"]),
        _data(beacon_root),
    ]
    header.append(requests_hash(requests or []))
    return "0x" + keccak(encode(header)).hex()


def requests_hash(requests: list[str]) -> bytes:
    """EIP-7685: sha256 of the sha256 of each non-empty request."""
    outer = hashlib.sha256()
    for r in requests:
        raw = _data(r)
        if len(raw) > 1:
            outer.update(hashlib.sha256(raw).digest())
    return outer.digest()


def resealed(payload: dict[str, Any], beacon_root: str, requests: list[str] | None = None, **changes: Any) -> dict[str, Any]:
    """``payload`` with ``changes`` and the block hash they give."""
    changed = {**payload, **changes}
    return {**changed, "blockHash": block_hash(changed, beacon_root, requests)}
