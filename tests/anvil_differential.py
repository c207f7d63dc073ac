"""anvil as a differential oracle: the same signed transactions go to two nodes, which must agree.

The transactions are signed once, by dev accounts of the standard mnemonic, with fees that do not
depend on the base fee (legacy and access-list transactions at a fixed gas price, and EIP-1559 ones
whose priority fee equals their fee cap), so that every sender pays the same on both nodes. They
are sent in waves: a wave holds only transactions independent of each other's order, and each
wave waits for every receipt on both nodes, so that block boundaries cannot change any outcome.

Compared: per transaction, the receipt's status, type, gas used, effective gas price, created
address and logs; then the balance change, nonce and token balance of every account involved, and
the deployed code and storage of the token.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from client_scenarios import dev_key, token_artifact
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

GAS_PRICE = 20 * 10**9
MAX_UINT256 = 2**256 - 1
FRESH = Web3.to_checksum_address("0x" + "5a" * 20)


@dataclass(frozen=True)
class SignedTx:
    label: str
    raw: bytes


class Signer:
    """Signs transactions for one dev account, counting its nonce locally."""

    def __init__(self, index: int, chain_id: int) -> None:
        self.account: LocalAccount = Account.from_key(dev_key(index))
        self.chain_id = chain_id
        self.nonce = 0

    @property
    def address(self) -> str:
        return str(self.account.address)

    def sign(self, label: str, tx_type: int, gas: int, to: str | None = None,
             value: int = 0, data: bytes = b"") -> SignedTx:
        tx: dict[str, Any] = {
            "chainId": self.chain_id, "nonce": self.nonce, "gas": gas, "value": value,
            "data": data,
        }
        if to is not None:
            tx["to"] = to
        if tx_type == 2:
            tx.update(type=2, maxFeePerGas=GAS_PRICE, maxPriorityFeePerGas=GAS_PRICE)
        else:
            tx["gasPrice"] = GAS_PRICE
            if tx_type == 1:
                tx.update(type=1, accessList=[{"address": FRESH, "storageKeys": ["0x" + "00" * 32]}])
        self.nonce += 1
        return SignedTx(label, bytes(self.account.sign_transaction(tx).raw_transaction))


def transaction_waves(chain_id: int) -> tuple[list[list[SignedTx]], list[str], str]:
    """The waves of signed transactions, the accounts they touch and the token's address."""
    deployer, alice, bob, carol, dave = (Signer(i, chain_id) for i in range(5, 10))
    artifact = json.loads(token_artifact().read_text())
    # CREATE address of the deployer's first transaction: keccak(rlp([sender, 0]))[12:].
    token = Web3.to_checksum_address(
        Web3.keccak(b"\xd6\x94" + bytes.fromhex(deployer.address[2:]) + b"\x80")[12:]
    )
    contract = Web3().eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])

    def call(fn: str, *args: Any) -> bytes:
        return bytes.fromhex(contract.encode_abi(fn, args=list(args))[2:])

    deploy_data = bytes.fromhex(contract.constructor("Oracle", "ORC").data_in_transaction[2:])
    waves = [
        [deployer.sign("deploy", 0, 1_500_000, data=deploy_data)],
        [
            deployer.sign("mint", 2, 200_000, token,
                          data=call("mintBatch", [alice.address, bob.address, carol.address], 1000)),
            carol.sign("ether with access list", 1, 30_000, FRESH, value=10**18 + 7),
            dave.sign("ether to a busy account", 0, 21_000, alice.address, value=3 * 10**17),
        ],
        [
            alice.sign("token transfer", 2, 80_000, token, data=call("transfer", bob.address, 100)),
            bob.sign("reverting transfer", 0, 80_000, token,
                     data=call("transfer", carol.address, 5_000)),
            carol.sign("out of gas", 2, 25_000, token, data=call("transfer", dave.address, 1)),
            alice.sign("approve", 0, 60_000, token, data=call("approve", dave.address, MAX_UINT256)),
        ],
        [dave.sign("transferFrom", 2, 90_000, token,
                   data=call("transferFrom", alice.address, dave.address, 50))],
    ]
    accounts = [s.address for s in (deployer, alice, bob, carol, dave)] + [FRESH]
    return waves, accounts, token


def observe(w3: Web3, accounts: list[str], token: str) -> dict[str, Any]:
    """What the comparison reads from one node besides receipts."""
    abi = json.loads(token_artifact().read_text())["abi"]
    contract = w3.eth.contract(address=token, abi=abi)

    def balance_of(account: str) -> bytes:
        # Raw return data, compared as is: a node where the deploy failed answers empty bytes.
        data = contract.encode_abi("balanceOf", args=[account])
        return bytes(w3.eth.call({"to": token, "data": data}))

    return {
        "balances": {a: w3.eth.get_balance(a) for a in accounts},
        "nonces": {a: w3.eth.get_transaction_count(a) for a in accounts},
        "tokens": {a: balance_of(a) for a in accounts},
        "code": bytes(w3.eth.get_code(token)),
        # Slot 2 is totalSupply (name, symbol, then totalSupply in Token.sol's layout).
        "total_supply_slot": bytes(w3.eth.get_storage_at(token, 2)),
    }


def receipt_fields(receipt: Any) -> dict[str, Any]:
    return {
        "status": receipt["status"],
        "type": receipt["type"],
        "gasUsed": receipt["gasUsed"],
        "effectiveGasPrice": receipt["effectiveGasPrice"],
        "contractAddress": receipt.get("contractAddress"),
        "logs": [
            (log["address"], [bytes(t) for t in log["topics"]], bytes(log["data"]))
            for log in receipt["logs"]
        ],
    }


def differential_run(url_a: str, url_b: str) -> list[str]:
    """Send every wave to both nodes; return the differences (empty when they agree)."""
    nodes = [Web3(Web3.HTTPProvider(u, request_kwargs={"timeout": 30})) for u in (url_a, url_b)]
    chain_ids = {w3.eth.chain_id for w3 in nodes}
    assert len(chain_ids) == 1, f"the nodes run different chains: {chain_ids}"
    waves, accounts, token = transaction_waves(chain_ids.pop())
    before = [{a: w3.eth.get_balance(a) for a in accounts} for w3 in nodes]
    differences: list[str] = []
    for wave in waves:
        hashes = [[w3.eth.send_raw_transaction(tx.raw) for tx in wave] for w3 in nodes]
        receipts = [
            [w3.eth.wait_for_transaction_receipt(h, timeout=60, poll_latency=0.05) for h in hs]
            for w3, hs in zip(nodes, hashes)
        ]
        for tx, a, b in zip(wave, *receipts):
            fields_a, fields_b = receipt_fields(a), receipt_fields(b)
            if fields_a != fields_b:
                differences.append(f"{tx.label}: {fields_a} != {fields_b}")
    after = [observe(w3, accounts, token) for w3 in nodes]
    for account in accounts:
        deltas = [obs["balances"][account] - prev[account] for obs, prev in zip(after, before)]
        if deltas[0] != deltas[1]:
            differences.append(f"balance change of {account}: {deltas[0]} != {deltas[1]}")
    for key in ("nonces", "tokens", "code", "total_supply_slot"):
        if after[0][key] != after[1][key]:
            differences.append(f"{key}: {after[0][key]!r} != {after[1][key]!r}")
    return differences
