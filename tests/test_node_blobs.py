"""
EIP-4844 blob transactions through ``parex node`` over real sockets: the network form
(``0x03 || rlp([tx_payload_body, blobs, commitments, proofs])``) is accepted through
eth_sendRawTransaction, its sidecar checked with c-kzg; blocks carry the canonical
transaction; receipts, transactions and headers show the blob fields; the Engine API's
blobsBundle carries the sidecars and a payload respects the per-block blob limit.

Test blobs are deterministic and built here with ckzg (the Python binding of c-kzg-4844,
installed with eth-account) and the trusted setup eth-account ships; transactions are signed
by eth-account. Refusals (tampered proof, wrong versioned hash, missing sidecar, blob fee
cap below the blob base fee) must name what was wrong, and the node must keep serving.
anvil (Prague) is the oracle for the receipt, transaction and header blob fields.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import ckzg
import eth_account
import pytest
import rlp
from eth_account import Account
from eth_utils import keccak
from node_process import NodeProcess, rpc, start_node
from test_node_engine_api import BEACON_ROOT, ZERO32, attributes, engine, head
from web3 import Web3

DEV_KEYS = [
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
]
TO = "0xEeeeeEeeeEeEeeEeEeEeeEEEeeeeEeeeeeeeEEeE"
GAS_PER_BLOB = 131072
MAX_BLOBS_PER_BLOCK = 9  # Prague (EIP-7691)


@cache
def trusted_setup() -> object:
    path = Path(eth_account.__file__).parent / "typed_transactions/blob_transactions/kzg_trusted_setup.txt"
    return ckzg.load_trusted_setup(str(path), 0)


def make_blob(seed: int) -> bytes:
    """4096 field elements, each below the BLS12-381 modulus (its top byte is zero)."""
    stream = b"".join(hashlib.sha256(seed.to_bytes(8, "big") + i.to_bytes(4, "big")).digest()[:31] for i in range(4096))
    return b"".join(b"\x00" + stream[31 * i : 31 * (i + 1)] for i in range(4096))


def versioned_hash(commitment: bytes) -> bytes:
    return b"\x01" + hashlib.sha256(commitment).digest()[1:]


class BlobTx:
    """A signed blob transaction: its canonical and network encodings and its sidecar."""

    def __init__(
        self,
        nonce: int,
        seeds: list[int],
        *,
        key: str = DEV_KEYS[0],
        blob_fee_cap: int = 10**9,
        hashes: list[bytes] | None = None,
    ) -> None:
        setup = trusted_setup()
        self.blobs = [make_blob(s) for s in seeds]
        self.commitments = [bytes(ckzg.blob_to_kzg_commitment(b, setup)) for b in self.blobs]
        self.proofs = [
            bytes(ckzg.compute_blob_kzg_proof(b, c, setup)) for b, c in zip(self.blobs, self.commitments)
        ]
        self.hashes = hashes if hashes is not None else [versioned_hash(c) for c in self.commitments]
        # Signed without blobs: eth-account then returns the canonical encoding (with blobs it
        # builds Osaka's EIP-7594 cell-proof form, which a Prague chain does not take).
        signed = Account.from_key(key).sign_transaction(
            {
                "type": 3,
                "chainId": 31337,
                "nonce": nonce,
                "to": TO,
                "value": 1,
                "gas": 21_000,
                "maxFeePerGas": 10**10,
                "maxPriorityFeePerGas": 10**9,
                "maxFeePerBlobGas": blob_fee_cap,
                "blobVersionedHashes": self.hashes,
            }
        )
        self.canonical = bytes(signed.raw_transaction)
        self.hash = "0x" + bytes(signed.hash).hex()
        assert self.canonical[0] == 3 and keccak(self.canonical) == bytes(signed.hash)
        self.body = rlp.decode(self.canonical[1:])

    def network(self, proofs: list[bytes] | None = None) -> bytes:
        """The EIP-4844 network form (``proofs`` replaces the sidecar's proofs)."""
        sidecar = [self.blobs, self.commitments, self.proofs if proofs is None else proofs]
        return b"\x03" + rlp.encode([self.body, *sidecar])

    def network_hex(self, proofs: list[bytes] | None = None) -> str:
        return "0x" + self.network(proofs).hex()


def send_error(node: NodeProcess, raw: bytes | str) -> str:
    raw_hex = raw if isinstance(raw, str) else "0x" + raw.hex()
    with pytest.raises(RuntimeError) as caught:
        rpc(node.url, "eth_sendRawTransaction", [raw_hex])
    error = caught.value.args[0]
    assert error["code"] == -32000, error
    return str(error["message"])


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    with start_node(tmp_path_factory.mktemp("blobs") / "node", block_time=0.25) as running:
        yield running


@pytest.fixture
def driven(tmp_path: Path) -> Iterator[NodeProcess]:
    """No sequencer: blocks come through the Engine API only."""
    with start_node(tmp_path / "node", block_time=0) as running:
        yield running


def wait_receipt(w3: Web3, tx_hash: str) -> Any:
    return w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30, poll_latency=0.1)


def test_valid_blob_transaction_is_included_with_its_fields(node: NodeProcess) -> None:
    w3 = Web3(Web3.HTTPProvider(node.url))
    assert w3.eth.blob_base_fee == 1
    tx = BlobTx(w3.eth.get_transaction_count(Account.from_key(DEV_KEYS[0]).address), [1, 2])
    sent = w3.eth.send_raw_transaction(tx.network())
    assert "0x" + bytes(sent).hex() == tx.hash  # the canonical hash, not the network form's
    receipt = wait_receipt(w3, tx.hash)
    assert receipt["status"] == 1 and receipt["type"] == 3
    assert receipt["blobGasUsed"] == 2 * GAS_PER_BLOB
    assert receipt["blobGasPrice"] == 1
    got = w3.eth.get_transaction(tx.hash)
    assert got["type"] == 3 and got["maxFeePerBlobGas"] == 10**9
    assert [bytes(h) for h in got["blobVersionedHashes"]] == tx.hashes
    block = w3.eth.get_block(receipt["blockNumber"])
    assert block["blobGasUsed"] == 2 * GAS_PER_BLOB
    assert block["excessBlobGas"] == 0
    # The block carries the canonical transaction, without the sidecar.
    raw = rpc(node.url, "eth_getRawTransactionByHash", [tx.hash])
    assert raw == "0x" + tx.canonical.hex()


def test_invalid_blob_transactions_are_refused_and_the_node_keeps_serving(node: NodeProcess) -> None:
    w3 = Web3(Web3.HTTPProvider(node.url))
    nonce = w3.eth.get_transaction_count(Account.from_key(DEV_KEYS[0]).address, "pending")
    tx = BlobTx(nonce, [10, 11])
    # Tampered proof: the two proofs swapped (valid points that open other commitments).
    message = send_error(node, tx.network([tx.proofs[1], tx.proofs[0]]))
    assert message.startswith("invalid blob proof"), message
    # A proof that is not a curve point at all.
    message = send_error(node, tx.network([b"\x11" * 48, tx.proofs[1]]))
    assert message.startswith("invalid blob proof"), message
    # A versioned hash that is not its commitment's.
    wrong = list(tx.hashes)
    wrong[1] = wrong[1][:5] + bytes([wrong[1][5] ^ 1]) + wrong[1][6:]
    message = send_error(node, BlobTx(nonce, [10, 11], hashes=wrong).network())
    assert message.startswith("blob 1: computed hash 0x"), message
    assert "mismatches transaction one 0x" + wrong[1].hex() in message
    # The canonical form alone: no sidecar.
    assert send_error(node, tx.canonical) == "missing sidecar in blob transaction"
    # A blob fee cap below the blob base fee (1 wei here).
    assert w3.eth.blob_base_fee == 1
    message = send_error(node, BlobTx(nonce, [12], blob_fee_cap=0).network())
    assert message.startswith("max fee per blob gas less than block blob gas fee"), message
    # More blobs than a block can hold.
    message = send_error(node, BlobTx(nonce, list(range(20, 30))).network())
    assert message == f"too many blobs in transaction: have 10, permitted {MAX_BLOBS_PER_BLOCK}"
    # None of them entered the pool; the node still serves and takes the valid one.
    assert w3.eth.get_transaction_count(Account.from_key(DEV_KEYS[0]).address, "pending") == nonce
    assert w3.eth.block_number >= 0
    receipt = wait_receipt(w3, w3.eth.send_raw_transaction(tx.network()))
    assert receipt["status"] == 1 and receipt["blobGasUsed"] == 2 * GAS_PER_BLOB


def test_payload_respects_the_blob_limit_and_carries_the_blobs_bundle(driven: NodeProcess) -> None:
    txs = [BlobTx(n, [100 + 2 * n, 101 + 2 * n]) for n in range(6)]  # 12 blobs
    for tx in txs:
        assert rpc(driven.url, "eth_sendRawTransaction", [tx.network_hex()]) == tx.hash
    excess = 0
    included: list[BlobTx] = []
    while len(included) < len(txs):
        parent = head(driven)
        fcu = engine(driven, "engine_forkchoiceUpdatedV3",
                     {"headBlockHash": parent["hash"], "safeBlockHash": parent["hash"],
                      "finalizedBlockHash": ZERO32}, attributes(parent))
        got = engine(driven, "engine_getPayloadV4", fcu["result"]["payloadId"])["result"]
        payload = got["executionPayload"]
        block_txs = [t for t in txs if "0x" + t.canonical.hex() in payload["transactions"]]
        assert payload["transactions"] == ["0x" + t.canonical.hex() for t in block_txs]
        blobs = sum(len(t.blobs) for t in block_txs)
        assert 0 < blobs <= MAX_BLOBS_PER_BLOCK
        assert int(payload["blobGasUsed"], 16) == blobs * GAS_PER_BLOB
        assert int(payload["excessBlobGas"], 16) == excess  # EIP-4844 from the parent
        bundle = got["blobsBundle"]
        assert bundle["commitments"] == ["0x" + c.hex() for t in block_txs for c in t.commitments]
        assert bundle["proofs"] == ["0x" + p.hex() for t in block_txs for p in t.proofs]
        assert bundle["blobs"] == ["0x" + b.hex() for t in block_txs for b in t.blobs]
        expected = ["0x" + h.hex() for t in block_txs for h in t.hashes]
        # The versioned hashes the consensus layer expects must be the block's.
        bad = engine(driven, "engine_newPayloadV4", payload, expected[:-1], BEACON_ROOT, [])["result"]
        assert bad["status"] == "INVALID" and "versioned hashes" in bad["validationError"]
        status = engine(driven, "engine_newPayloadV4", payload, expected, BEACON_ROOT, [])["result"]
        assert status["status"] == "VALID", status
        fcu = engine(driven, "engine_forkchoiceUpdatedV3",
                     {"headBlockHash": payload["blockHash"], "safeBlockHash": payload["blockHash"],
                      "finalizedBlockHash": ZERO32})
        assert fcu["result"]["payloadStatus"]["status"] == "VALID"
        excess = max(excess + blobs * GAS_PER_BLOB - 6 * GAS_PER_BLOB, 0)
        included += block_txs
    # The first block filled up to the limit: 4 transactions of 2 blobs (a fifth would be 10).
    assert [t.hash for t in included] == [t.hash for t in txs]
    first = rpc(driven.url, "eth_getBlockByNumber", ["0x1", False])
    assert isinstance(first, dict) and int(first["blobGasUsed"], 16) == 8 * GAS_PER_BLOB
    second = rpc(driven.url, "eth_getBlockByNumber", ["0x2", False])
    assert isinstance(second, dict) and int(second["excessBlobGas"], 16) == 2 * GAS_PER_BLOB
    w3 = Web3(Web3.HTTPProvider(driven.url))
    receipt = w3.eth.get_transaction_receipt(txs[-1].hash)
    assert receipt["blobGasUsed"] == 2 * GAS_PER_BLOB and receipt["blockNumber"] == 2
    assert w3.eth.blob_base_fee == 1  # fake_exponential(1, 262144, 5007716)
    history = rpc(driven.url, "eth_feeHistory", ["0x2", "latest", []])
    assert isinstance(history, dict)
    assert history["blobGasUsedRatio"] == [8 / 9, 4 / 9]
    assert history["baseFeePerBlobGas"] == ["0x1", "0x1", "0x1"]


def test_blob_transaction_agrees_with_anvil(tmp_path: Path) -> None:
    """The same signed blob transaction on anvil (Prague) and on parex: the same hash, receipt
    blob fields and gas, and on both the sender pays execution gas, blob gas and value."""
    from anvil_process import start_anvil

    tx = BlobTx(0, [7, 8, 9])
    sender = Account.from_key(DEV_KEYS[0]).address
    seen: dict[str, dict[str, Any]] = {}
    with start_anvil(hardfork="prague") as anvil_url, start_node(tmp_path / "node") as parex:
        for name, url in (("anvil", anvil_url), ("parex", parex.url)):
            w3 = Web3(Web3.HTTPProvider(url))
            before = w3.eth.get_balance(sender)
            assert "0x" + bytes(w3.eth.send_raw_transaction(tx.network())).hex() == tx.hash
            receipt = wait_receipt(w3, tx.hash)
            paid = before - w3.eth.get_balance(sender)
            assert paid == 1 + receipt["gasUsed"] * receipt["effectiveGasPrice"] + (
                receipt["blobGasUsed"] * receipt["blobGasPrice"]
            ), name
            got = w3.eth.get_transaction(tx.hash)
            block = w3.eth.get_block(receipt["blockNumber"])
            seen[name] = {
                "status": receipt["status"],
                "type": receipt["type"],
                "gasUsed": receipt["gasUsed"],
                "blobGasUsed": receipt["blobGasUsed"],
                "blobGasPrice": receipt["blobGasPrice"],
                "maxFeePerBlobGas": got["maxFeePerBlobGas"],
                "blobVersionedHashes": [bytes(h) for h in got["blobVersionedHashes"]],
                "block.blobGasUsed": block["blobGasUsed"],
                "block.excessBlobGas": block["excessBlobGas"],
            }
    assert seen["parex"] == seen["anvil"]
    assert seen["parex"]["blobGasUsed"] == 3 * GAS_PER_BLOB
