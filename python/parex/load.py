"""
``parex load``: a sustained stream of signed transactions sent to a node over JSON-RPC, measured
end to end.

The run has two phases.

Set-up
    A funder (the first dev account of the standard mnemonic unless told otherwise) gives ether
    to ``senders`` fresh accounts derived from the seed, deploys the Token contract and mints
    tokens to every sender. Every set-up transaction must succeed.

Measurement
    For ``duration`` seconds, a sender thread signs transactions in batches (in Rust, in
    parallel) and sends each batch as one JSON-RPC batch of ``eth_sendRawTransaction`` calls.
    Each sender keeps at most ``depth`` transactions in flight, so the node always has work but
    never a nonce gap. A poller thread follows the chain head; for every new block it reads the
    block and its receipts, and times each of our transactions from its send to the moment its
    receipt was first seen. When sending stops, the run waits for the transactions still in
    flight.

What is reported:

- ``tx_per_s``: included transactions over the time from the first send to the last inclusion;
- ``block_fill``: the mean of gas used over gas limit, over the blocks built during the run;
- ``latency_p50_ms`` and ``latency_p99_ms``: send-to-receipt latency (it includes the poller's
  ``POLL_INTERVAL_S`` granularity);
- ``failed`` (included but reverted), ``rejected`` (refused by ``eth_sendRawTransaction``, with
  the first reasons) and ``lost`` (accepted but not included before the drain timeout).
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from eth_account import Account as EthAccount

from . import contracts
from .workloads import (
    ETHER,
    GWEI,
    TOKEN_FUNDS,
    Account,
    Call,
    derive_accounts,
    mint_calls,
    plain_address,
    sign_calls,
)

DEV_MNEMONIC = "test test test test test test test test test test test junk"
"""The mnemonic whose first accounts dev nodes (parex node, anvil, Hardhat) fund."""
POLL_INTERVAL_S = 0.02
DRAIN_TIMEOUT_S = 30.0
SET_UP_TIMEOUT_S = 120.0
SENDER_FUNDS = 10 * ETHER
WORKLOAD_GAS = {"erc20": 60_000, "transfer": 21_000}
"""The gas limit of each measured transaction, per workload."""
MAX_REJECTION_REASONS = 5


class RpcError(RuntimeError):
    """A JSON-RPC error answer, or a node that cannot be reached."""


class LoadError(RuntimeError):
    """The load run could not be set up or carried out (the message says what failed)."""


@dataclass(frozen=True, slots=True)
class LoadConfig:
    url: str = "http://127.0.0.1:8545"
    workload: str = "erc20"
    senders: int = 500
    duration_s: float = 20.0
    rate: int = 0
    """Transactions per second to aim for; 0 sends as fast as the in-flight window allows."""
    batch: int = 250
    depth: int = 4
    private_key: str | None = None
    seed: int = 0


@dataclass(frozen=True, slots=True)
class LoadReport:
    url: str
    workload: str
    senders: int
    sent: int
    included: int
    failed: int
    rejected: int
    lost: int
    elapsed_s: float
    tx_per_s: float
    blocks: int
    block_fill: float
    txs_per_block: float
    latency_p50_ms: float
    latency_p99_ms: float
    rejection_reasons: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {
            name: list(value) if isinstance(value, tuple) else value
            for name, value in ((f, getattr(self, f)) for f in self.__dataclass_fields__)
        }


class RpcClient:
    """JSON-RPC over one keep-alive HTTP connection, with batches."""

    def __init__(self, url: str, timeout_s: float = 30.0) -> None:
        self.url = url
        self._http = httpx.Client(timeout=timeout_s)
        self._next_id = 0

    def close(self) -> None:
        self._http.close()

    def _post(self, body: object) -> Any:
        try:
            response = self._http.post(self.url, json=body)
        except httpx.HTTPError as error:
            raise RpcError(f"{self.url}: {error}") from error
        if response.status_code != 200:
            raise RpcError(f"{self.url}: HTTP {response.status_code}: {response.text[:200]}")
        return response.json()

    def call(self, method: str, *params: object) -> Any:
        answer = self._post(self._request(method, list(params)))
        if "error" in answer:
            raise RpcError(f"{method}: {answer['error'].get('message', answer['error'])}")
        return answer["result"]

    def batch(self, method: str, params: Sequence[list[object]]) -> list[tuple[Any, str | None]]:
        """(result, None) or (None, error message) for each call, in the order given."""
        if not params:
            return []
        requests = [self._request(method, p) for p in params]
        answers = self._post(requests)
        if not isinstance(answers, list):
            raise RpcError(f"{method} batch: expected a list, got {str(answers)[:200]}")
        by_id = {a.get("id"): a for a in answers}
        out: list[tuple[Any, str | None]] = []
        for request in requests:
            answer = by_id.get(request["id"], {"error": {"message": "no answer in the batch"}})
            if "error" in answer:
                out.append((None, str(answer["error"].get("message", answer["error"]))))
            else:
                out.append((answer["result"], None))
        return out

    def _request(self, method: str, params: list[object]) -> dict[str, Any]:
        self._next_id += 1
        return {"jsonrpc": "2.0", "id": self._next_id, "method": method, "params": params}


def _hex(value: int) -> str:
    return hex(value)


def dev_key(index: int = 0) -> bytes:
    """The secret key of dev account ``index`` of the standard mnemonic (m/44'/60'/0'/0/i)."""
    EthAccount.enable_unaudited_hdwallet_features()
    account = EthAccount.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")
    return bytes(account.key)


@dataclass(slots=True)
class Fees:
    max_fee: int
    priority_fee: int


def current_fees(client: RpcClient) -> Fees:
    """Fees that stay valid while the base fee climbs tenfold during the run."""
    latest = client.call("eth_getBlockByNumber", "latest", False)
    base_fee = int(latest.get("baseFeePerGas") or "0x0", 16)
    try:
        priority = int(client.call("eth_maxPriorityFeePerGas"), 16)
    except RpcError:
        priority = GWEI
    return Fees(max_fee=max(10 * base_fee, 10 * GWEI) + priority, priority_fee=priority)


def next_nonces(client: RpcClient, accounts: Sequence[Account]) -> None:
    """Sets each account's nonce to the node's pending transaction count."""
    answers = client.batch(
        "eth_getTransactionCount", [[_hex_address(a.address), "pending"] for a in accounts]
    )
    for account, (result, error) in zip(accounts, answers):
        if error is not None:
            raise LoadError(f"eth_getTransactionCount({_hex_address(account.address)}): {error}")
        account.nonce = int(result, 16)


def _hex_address(address: bytes) -> str:
    return "0x" + address.hex()


def send_and_wait(
    client: RpcClient, chain_id: int, fees: Fees, calls: Sequence[Call], what: str
) -> list[dict[str, Any]]:
    """Sends ``calls`` and waits for every receipt; each must succeed."""
    raw = sign_calls(calls, chain_id, fees.max_fee, fees.priority_fee)
    hashes = []
    for start in range(0, len(raw), 250):
        chunk = raw[start : start + 250]
        for (result, error), _ in zip(
            client.batch("eth_sendRawTransaction", [["0x" + tx.hex()] for tx in chunk]), chunk
        ):
            if error is not None:
                raise LoadError(f"set-up ({what}): the node refused a transaction: {error}")
            hashes.append(result)
    deadline = time.monotonic() + SET_UP_TIMEOUT_S
    receipts: dict[str, dict[str, Any]] = {}
    while len(receipts) < len(hashes):
        if time.monotonic() > deadline:
            raise LoadError(
                f"set-up ({what}): {len(hashes) - len(receipts)} transaction(s) not included "
                f"within {SET_UP_TIMEOUT_S:.0f} s"
            )
        missing = [h for h in hashes if h not in receipts]
        for h, (receipt, _) in zip(
            missing, client.batch("eth_getTransactionReceipt", [[h] for h in missing])
        ):
            if receipt is not None:
                receipts[h] = receipt
        if len(receipts) < len(hashes):
            time.sleep(POLL_INTERVAL_S)
    ordered = [receipts[h] for h in hashes]
    failed = [i for i, r in enumerate(ordered) if int(r["status"], 16) != 1]
    if failed:
        raise LoadError(f"set-up ({what}): {len(failed)} transaction(s) reverted")
    return ordered


@dataclass(slots=True)
class Plan:
    """What the measurement phase sends: who, to what, with which fees."""

    chain_id: int
    fees: Fees
    senders: list[Account]
    calls: list[Callable[[Account], Call]]
    """The measured call of each sender, by sender index."""


def _call_maker(to: bytes, data: bytes, value: int, gas: int) -> Callable[[Account], Call]:
    def make(sender: Account) -> Call:
        return Call(sender, to, data, value=value, gas_limit=gas)

    return make


def set_up(client: RpcClient, config: LoadConfig) -> Plan:
    """Funds the senders and, for ``erc20``, deploys the token and mints to every sender."""
    if config.workload not in WORKLOAD_GAS:
        raise LoadError(f"unknown workload {config.workload!r}: choose one of {sorted(WORKLOAD_GAS)}")
    chain_id = int(client.call("eth_chainId"), 16)
    fees = current_fees(client)
    secret = bytes.fromhex(config.private_key.removeprefix("0x")) if config.private_key else dev_key()
    funder = Account(secret, bytes.fromhex(EthAccount.from_key(secret).address[2:]))
    senders = derive_accounts(config.seed, "load", config.senders)
    next_nonces(client, [funder, *senders])

    needed = SENDER_FUNDS * len(senders)
    balance = int(client.call("eth_getBalance", _hex_address(funder.address), "latest"), 16)
    if balance < needed:
        raise LoadError(
            f"the funder {_hex_address(funder.address)} holds {balance} wei; funding "
            f"{len(senders)} senders needs {needed} wei (use fewer --senders)"
        )
    send_and_wait(
        client, chain_id, fees,
        [Call(funder, s.address, value=SENDER_FUNDS, gas_limit=21_000) for s in senders],
        "funding senders",
    )
    recipients = [plain_address(config.seed, "load-recipient", i) for i in range(len(senders))]
    gas = WORKLOAD_GAS[config.workload]
    calls: list[Callable[[Account], Call]]
    if config.workload == "transfer":
        calls = [_call_maker(to, b"", 1, gas) for to in recipients]
    else:
        token_code = contracts.load("Token").deploy_data("Load", "LOAD")
        (deploy,) = send_and_wait(
            client, chain_id, fees,
            [Call(funder, None, token_code, gas_limit=1_500_000)], "deploying the token",
        )
        token = bytes.fromhex(deploy["contractAddress"][2:])
        send_and_wait(
            client, chain_id, fees,
            mint_calls(funder, token, [s.address for s in senders], TOKEN_FUNDS),
            "minting tokens",
        )
        calls = [
            _call_maker(token, contracts.encode_call("transfer(address,uint256)", to, 1), 0, gas)
            for to in recipients
        ]
    return Plan(chain_id, fees, senders, calls)


@dataclass
class _Flight:
    """Shared between the sender and the poller: what is in flight, and what was seen."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    pending: dict[str, tuple[int, float]] = field(default_factory=dict)
    """Transaction hash -> (sender index, send time)."""
    in_flight: list[int] = field(default_factory=list)
    sent: int = 0
    rejected: int = 0
    rejection_reasons: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    failed: int = 0
    first_send: float | None = None
    last_inclusion: float | None = None
    blocks: list[tuple[int, int, int]] = field(default_factory=list)
    """(transactions, gas used, gas limit) of every block built since the first send."""
    resync: set[int] = field(default_factory=set)


def _send_loop(client: RpcClient, config: LoadConfig, plan: Plan, flight: _Flight,
               stop_at: float) -> None:
    cursor = 0
    count = len(plan.senders)
    while time.monotonic() < stop_at:
        if config.rate and flight.first_send is not None:
            allowed = config.rate * (time.monotonic() - flight.first_send)
            if flight.sent >= allowed:
                time.sleep(0.005)
                continue
        with flight.lock:
            resync = sorted(flight.resync)
            flight.resync.clear()
        if resync:
            next_nonces(client, [plan.senders[i] for i in resync])
        chosen: list[int] = []
        with flight.lock:
            for step in range(count):
                index = (cursor + step) % count
                if flight.in_flight[index] < config.depth:
                    chosen.append(index)
                    flight.in_flight[index] += 1
                    if len(chosen) == config.batch:
                        break
        cursor = (cursor + len(chosen)) % count
        if not chosen:
            time.sleep(POLL_INTERVAL_S / 2)
            continue
        calls = [plan.calls[i](plan.senders[i]) for i in chosen]
        raw = sign_calls(calls, plan.chain_id, plan.fees.max_fee, plan.fees.priority_fee)
        sent_at = time.monotonic()
        answers = client.batch("eth_sendRawTransaction", [["0x" + tx.hex()] for tx in raw])
        with flight.lock:
            if flight.first_send is None:
                flight.first_send = sent_at
            for index, (tx_hash, error) in zip(chosen, answers):
                flight.sent += 1
                if error is None:
                    flight.pending[str(tx_hash).lower()] = (index, sent_at)
                else:
                    flight.rejected += 1
                    flight.in_flight[index] -= 1
                    flight.resync.add(index)
                    if len(flight.rejection_reasons) < MAX_REJECTION_REASONS:
                        flight.rejection_reasons.append(error)


def _poll_loop(client: RpcClient, flight: _Flight, done: threading.Event) -> None:
    head = int(client.call("eth_blockNumber"), 16)
    while not done.is_set():
        latest = int(client.call("eth_blockNumber"), 16)
        for number in range(head + 1, latest + 1):
            block = client.call("eth_getBlockByNumber", _hex(number), False)
            receipts = client.call("eth_getBlockReceipts", _hex(number)) or []
            seen_at = time.monotonic()
            with flight.lock:
                if flight.first_send is not None:
                    flight.blocks.append((
                        len(block["transactions"]), int(block["gasUsed"], 16),
                        int(block["gasLimit"], 16),
                    ))
                for receipt in receipts:
                    entry = flight.pending.pop(receipt["transactionHash"].lower(), None)
                    if entry is None:
                        continue
                    index, sent_at = entry
                    flight.in_flight[index] -= 1
                    flight.latencies.append(seen_at - sent_at)
                    flight.last_inclusion = seen_at
                    if int(receipt["status"], 16) != 1:
                        flight.failed += 1
        head = latest
        done.wait(POLL_INTERVAL_S)


def _percentile(values: Sequence[float], fraction: float) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(fraction * 100) - 1]


def run_load(config: LoadConfig, on_progress: Callable[[float, int], None] | None = None) -> LoadReport:
    """Sets up, sends for ``config.duration_s`` seconds, drains, and reports."""
    if config.senders < 1 or config.batch < 1 or config.depth < 1 or config.duration_s <= 0:
        raise LoadError("senders, batch and depth must be at least 1, and duration positive")
    client = RpcClient(config.url)
    poll_client = RpcClient(config.url)
    try:
        plan = set_up(client, config)
        flight = _Flight(in_flight=[0] * len(plan.senders))
        done = threading.Event()
        errors: list[BaseException] = []

        def guarded(target: Callable[..., None], *args: object) -> Callable[[], None]:
            def run() -> None:
                try:
                    target(*args)
                except BaseException as error:  # noqa: BLE001 - reported by the main thread
                    errors.append(error)
                    done.set()
            return run

        poller = threading.Thread(target=guarded(_poll_loop, poll_client, flight, done))
        poller.start()
        start = time.monotonic()
        stop_at = start + config.duration_s
        sender = threading.Thread(target=guarded(_send_loop, client, config, plan, flight, stop_at))
        sender.start()
        while sender.is_alive():
            sender.join(0.2)
            if on_progress is not None:
                on_progress(min(time.monotonic() - start, config.duration_s), flight.sent)
        drain_until = time.monotonic() + DRAIN_TIMEOUT_S
        while flight.pending and time.monotonic() < drain_until and not errors:
            time.sleep(POLL_INTERVAL_S)
        done.set()
        poller.join()
        if errors:
            raise LoadError(f"the load run stopped: {errors[0]}") from errors[0]
    finally:
        client.close()
        poll_client.close()

    included = len(flight.latencies)
    elapsed = (
        (flight.last_inclusion - flight.first_send)
        if flight.first_send is not None and flight.last_inclusion is not None
        else 0.0
    )
    blocks = [b for b in flight.blocks if b[2] > 0]
    latencies = sorted(flight.latencies)
    return LoadReport(
        url=config.url,
        workload=config.workload,
        senders=config.senders,
        sent=flight.sent,
        included=included,
        failed=flight.failed,
        rejected=flight.rejected,
        lost=len(flight.pending),
        elapsed_s=round(elapsed, 3),
        tx_per_s=round(included / elapsed, 1) if elapsed > 0 else 0.0,
        blocks=len(blocks),
        block_fill=round(statistics.fmean(u / limit for _, u, limit in blocks), 4) if blocks else 0.0,
        txs_per_block=round(statistics.fmean(t for t, _, _ in blocks), 1) if blocks else 0.0,
        latency_p50_ms=round(1000 * _percentile(latencies, 0.50), 1),
        latency_p99_ms=round(1000 * _percentile(latencies, 0.99), 1),
        rejection_reasons=tuple(flight.rejection_reasons),
    )


DEFAULTS = LoadConfig()
"""The defaults of ``parex load``."""
