"""
``parex load``: drive a node over JSON-RPC with signed transactions and measure it end to end.

Set-up (over RPC, from the first dev account): fund ``senders`` fresh accounts, deploy the
benchmark ``Token`` and mint to every sender. Then every sender signs ``per_sender``
transactions (``Token.transfer`` to fresh recipients by default, or plain ether transfers),
all signed in Rust before the clock starts. Client threads submit them in JSON-RPC batches
as fast as the node takes them; a poller follows the chain block by block and notes when each
transaction became visible in a block (when its receipt can be read).

Reported: sustained tx/s (included transactions over the time from the first submission to
the last inclusion), block fill (gas used over gas limit, and transactions per block) and the
receipt latency (submission to first visibility in a block) p50/p99. Latencies include the
poll interval (``POLL_SECONDS``).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests

from .. import contracts
from ..workloads import Account, Call, derive_accounts, mint_calls, plain_address, sign_calls

POLL_SECONDS = 0.01
FUND = 10**18
MAX_FEE = 50 * 10**9
TIP = 10**9
WORKLOADS = ("erc20", "transfer")


class LoadError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class LoadReport:
    workload: str
    transactions: int
    included: int
    seconds: float
    tx_per_second: float
    blocks: int
    txs_per_block: float
    block_fill: float
    latency_p50_ms: float
    latency_p99_ms: float
    submit_seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}


@dataclass
class Client:
    url: str
    session: requests.Session = field(default_factory=requests.Session)
    ids: int = 0

    def batch(self, calls: list[tuple[str, list[Any]]]) -> list[dict[str, Any]]:
        body = []
        for method, params in calls:
            self.ids += 1
            body.append({"jsonrpc": "2.0", "id": self.ids, "method": method, "params": params})
        try:
            response = self.session.post(
                self.url, data=json.dumps(body), headers={"Content-Type": "application/json"},
                timeout=60,
            )
            response.raise_for_status()
            replies: list[dict[str, Any]] = response.json()
        except requests.ConnectionError:
            raise LoadError(f"cannot reach the node at {self.url}") from None
        except (requests.RequestException, ValueError) as error:
            raise LoadError(f"{self.url}: {error}") from None
        by_id = {r.get("id"): r for r in replies}
        return [by_id[b["id"]] for b in body]

    def call(self, method: str, *params: Any) -> Any:
        (reply,) = self.batch([(method, list(params))])
        if "error" in reply:
            raise LoadError(f"{method}: {reply['error'].get('message')}")
        return reply["result"]


def _send_all(client: Client, raws: list[bytes], batch: int = 200) -> list[str]:
    hashes = []
    for start in range(0, len(raws), batch):
        replies = client.batch([("eth_sendRawTransaction", ["0x" + r.hex()]) for r in raws[start : start + batch]])
        for reply in replies:
            if "error" in reply:
                raise LoadError(f"set-up transaction refused: {reply['error'].get('message')}")
            hashes.append(reply["result"])
    return hashes


def _wait_receipts(client: Client, hashes: list[str], timeout: float = 120) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    receipts: dict[str, dict[str, Any]] = {}
    while len(receipts) < len(hashes):
        missing = [h for h in hashes if h not in receipts]
        for start in range(0, len(missing), 500):
            chunk = missing[start : start + 500]
            for h, reply in zip(chunk, client.batch([("eth_getTransactionReceipt", [h]) for h in chunk])):
                if reply.get("result"):
                    receipts[h] = reply["result"]
        if len(receipts) < len(hashes):
            if time.monotonic() > deadline:
                raise LoadError(f"{len(hashes) - len(receipts)} set-up transactions not included in {timeout}s")
            time.sleep(0.05)
    failed = [h for h in hashes if receipts[h]["status"] != "0x1"]
    if failed:
        raise LoadError(f"set-up transaction {failed[0]} failed")
    return [receipts[h] for h in hashes]


def run_load(
    url: str,
    *,
    workload: str = "erc20",
    senders: int = 500,
    per_sender: int = 20,
    clients: int = 4,
    batch: int = 100,
    funder_secret: bytes,
    seed: int = 0,
    progress: Callable[[str], None] = lambda message: None,
) -> LoadReport:
    if workload not in WORKLOADS:
        raise LoadError(f"unknown workload {workload!r}; expected one of {', '.join(WORKLOADS)}")
    client = Client(url)
    chain_id = int(client.call("eth_chainId"), 16)
    funder = Account(funder_secret, bytes.fromhex(_address_of(funder_secret)))
    funder.nonce = int(client.call("eth_getTransactionCount", "0x" + funder.address.hex(), "pending"), 16)
    accounts = derive_accounts(seed, f"load-{time.time_ns()}", senders)

    token = b""
    if workload == "erc20":
        progress("set-up: deploying the token")
        artifact = contracts.load("Token")
        deploy = sign_calls([Call(funder, None, artifact.deploy_data("Load", "LD"), gas_limit=3_000_000)],
                            chain_id, MAX_FEE, TIP)
        (receipt,) = _wait_receipts(client, _send_all(client, deploy))
        token = bytes.fromhex(receipt["contractAddress"][2:])
    progress(f"set-up: funding {senders} senders")
    funding = [Call(funder, a.address, value=FUND, gas_limit=21_000) for a in accounts]
    setup = sign_calls(funding, chain_id, MAX_FEE, TIP)
    if workload == "erc20":
        setup += sign_calls(mint_calls(funder, token, [a.address for a in accounts], 10**24), chain_id, MAX_FEE, TIP)
    _wait_receipts(client, _send_all(client, setup))

    progress(f"signing {senders * per_sender} transactions")
    calls = []
    for round_ in range(per_sender):
        for i, sender in enumerate(accounts):
            to = plain_address(seed, "load-recipient", round_ * senders + i)
            if workload == "erc20":
                data = contracts.encode_call("transfer(address,uint256)", to, 1 + round_)
                calls.append(Call(sender, token, data, gas_limit=60_000))
            else:
                calls.append(Call(sender, to, value=1 + round_, gas_limit=21_000))
    raws = sign_calls(calls, chain_id, MAX_FEE, TIP)
    hashes = ["0x" + h.hex() for h in _hashes(raws)]

    sent_at: dict[str, float] = {}
    seen_at: dict[str, float] = {}
    blocks: list[tuple[int, int, int]] = []
    stop = threading.Event()
    start_block = int(client.call("eth_blockNumber"), 16)

    def poll() -> None:
        poller = Client(url)
        number = start_block + 1
        while not stop.is_set():
            block = poller.call("eth_getBlockByNumber", hex(number), False)
            if block is None:
                time.sleep(POLL_SECONDS)
                continue
            now = time.monotonic()
            for h in block["transactions"]:
                seen_at[h] = now
            if block["transactions"]:
                blocks.append((len(block["transactions"]), int(block["gasUsed"], 16), int(block["gasLimit"], 16)))
            number += 1

    chunks = [list(range(i, min(i + batch, len(raws)))) for i in range(0, len(raws), batch)]
    errors: list[str] = []

    def submit(worker: int) -> None:
        sender = Client(url)
        for chunk in chunks[worker::clients]:
            now = time.monotonic()
            for i in chunk:
                sent_at[hashes[i]] = now
            replies = sender.batch([("eth_sendRawTransaction", ["0x" + raws[i].hex()]) for i in chunk])
            errors.extend(r["error"]["message"] for r in replies if "error" in r)

    progress(f"submitting {len(raws)} transactions from {clients} clients")
    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    started = time.monotonic()
    workers = [threading.Thread(target=submit, args=(w,)) for w in range(clients)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    submitted = time.monotonic() - started
    if errors:
        stop.set()
        raise LoadError(f"{len(errors)} transactions refused, first: {errors[0]}")
    deadline = time.monotonic() + 120
    while len([h for h in hashes if h in seen_at]) < len(hashes) and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    poller.join(timeout=5)
    included = [h for h in hashes if h in seen_at]
    if not included:
        raise LoadError("no transaction was included")
    finished = max(seen_at[h] for h in included)
    seconds = finished - started
    latencies = sorted(seen_at[h] - sent_at[h] for h in included)
    gas_fill = [used / limit for _, used, limit in blocks if limit]
    return LoadReport(
        workload=workload,
        transactions=len(hashes),
        included=len(included),
        seconds=seconds,
        tx_per_second=len(included) / seconds if seconds > 0 else 0.0,
        blocks=len(blocks),
        txs_per_block=sum(n for n, _, _ in blocks) / len(blocks) if blocks else 0.0,
        block_fill=sum(gas_fill) / len(gas_fill) if gas_fill else 0.0,
        latency_p50_ms=1000 * latencies[len(latencies) // 2],
        latency_p99_ms=1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        submit_seconds=submitted,
    )


def _hashes(raws: list[bytes]) -> list[bytes]:
    from .._core import keccak256

    return [keccak256(r) for r in raws]


def _address_of(secret: bytes) -> str:
    from .._core import address_of

    return address_of(secret).hex()
