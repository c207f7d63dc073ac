"""
Crash safety: SIGKILL the node at random moments while it is under load, restart it, and
check that every transaction whose receipt a client saw is still there (same block, same
hash) and that the store's state equals a replay of its blocks from genesis.
"""

from __future__ import annotations

import http.client
import json
import random
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from node_process import NodeProcess, start_node

from parex import _core
from parex.node.chain import BlockRecord, replay_chain
from parex.node.genesis import dev_accounts, dev_genesis

CYCLES = 3
SENDERS = 6
BATCH = 40


def batch(url: str, calls: list[tuple[str, list[Any]]]) -> list[dict[str, Any]]:
    body = json.dumps(
        [{"jsonrpc": "2.0", "id": i, "method": m, "params": p} for i, (m, p) in enumerate(calls)]
    ).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        replies = json.loads(response.read())
    return sorted(replies, key=lambda r: r["id"])


class Load:
    """Senders that keep submitting transfers and collecting the receipts they see."""

    def __init__(self, node: NodeProcess, seen: dict[str, tuple[str, str]]):
        self.node = node
        self.seen = seen
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.accounts = dev_accounts()[:SENDERS]
        self.threads = [threading.Thread(target=self.run, args=(a,), daemon=True) for a in self.accounts]

    def run(self, account: Any) -> None:
        url = self.node.url
        address = "0x" + account.address.hex()
        try:
            nonce = int(batch(url, [("eth_getTransactionCount", [address, "latest"])])[0]["result"], 16)
            while not self.stop.is_set():
                requests = [
                    (nonce + i, bytes([0xEE] * 19 + [i % 7]), 1_000 + i, b"", 21_000, 10**10, 10**9)
                    for i in range(BATCH)
                ]
                raws = _core.sign_transactions(31337, [account.secret] * BATCH, requests)
                replies = batch(url, [("eth_sendRawTransaction", ["0x" + r.hex()]) for r in raws])
                hashes = [r["result"] for r in replies if "result" in r]
                nonce += BATCH
                pending = set(hashes)
                while pending and not self.stop.is_set():
                    ordered = sorted(pending)
                    receipts = batch(url, [("eth_getTransactionReceipt", [h]) for h in ordered])
                    for h, reply in zip(ordered, receipts):
                        receipt = reply.get("result")
                        if receipt:
                            with self.lock:
                                self.seen[h] = (receipt["blockHash"], receipt["blockNumber"])
                            pending.discard(h)
                    time.sleep(0.02)
        except (OSError, http.client.HTTPException, ValueError):
            return  # the node was killed under us (refused, reset, or cut mid-reply)

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def join(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=30)


def test_sigkill_under_load_loses_no_receipt(tmp_path: Path) -> None:
    data_dir = tmp_path / "node"
    seen: dict[str, tuple[str, str]] = {}
    rng = random.Random(1234)
    for _ in range(CYCLES):
        node = start_node(data_dir, block_time=0.05)
        try:
            load = Load(node, seen)
            load.start()
            time.sleep(rng.uniform(1.0, 3.0))
            node.kill()  # SIGKILL: mid-block, mid-commit, mid-response, wherever it is
            load.join()
        finally:
            node.kill()
    assert len(seen) > 100, f"the load produced only {len(seen)} receipts"
    print(f"{len(seen)} receipts seen over {CYCLES} crashes")

    with start_node(data_dir, block_time=0.05) as node:
        missing = []
        items = sorted(seen.items())
        for start in range(0, len(items), 200):
            chunk = items[start : start + 200]
            replies = batch(node.url, [("eth_getTransactionReceipt", [h]) for h, _ in chunk])
            for (tx_hash, (block_hash, number)), reply in zip(chunk, replies):
                receipt = reply.get("result")
                if not receipt or (receipt["blockHash"], receipt["blockNumber"]) != (block_hash, number):
                    missing.append(tx_hash)
        assert not missing, f"{len(missing)} of {len(seen)} acknowledged transactions lost"

    # The node is stopped: the store can be opened and replayed from genesis.
    store = _core.Store(data_dir / "chain.redb")
    head = store.head()
    assert head is not None and head > 0
    final = replay_chain(store, dev_genesis().state())
    head_raw = store.block(head)
    assert head_raw is not None
    assert _core.state_root(final) == BlockRecord.decode(head_raw).state_root
    assert final == store.load_state()
