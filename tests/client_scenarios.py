"""One scenario, driven by four unmodified Ethereum clients against any JSON-RPC endpoint.

Each client deploys the Token contract (contracts/src/Token.sol), sends an ether transfer and two
contract calls, waits for every receipt, estimates gas, reads the Transfer logs back and reads the
fee history. Every driver returns the same fields, so one checker judges them all:

    chainId, token, deployStatus, ethTransferStatus, mintStatus, transferStatus,
    transferGasUsed, gasEstimate, receiptLogs, recipientWei, recipientTokens,
    transfers [[from, to, value]], feeHistory {blocks, oldestBlock, rewards}

The JavaScript drivers live in tests/clients/ (ethers, viem); cast and web3.py are driven here.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from anvil_process import CLIENTS_DIR, client_binary
from eth_account import Account
from web3 import Web3

DEV_MNEMONIC = "test test test test test test test test test test test junk"
MINTED = 1000
SENT_TOKENS = 250
TRANSFER_EVENT = "Transfer(address indexed from,address indexed to,uint256 value)"
ZERO_ADDRESS = "0x" + "00" * 20

Account.enable_unaudited_hdwallet_features()


def dev_key(index: int) -> str:
    """The private key of dev account ``index`` (BIP-44 m/44'/60'/0'/0/index), as anvil derives it."""
    account = Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")
    return "0x" + bytes(account.key).hex()


def token_artifact() -> Path:
    return Path(str(resources.files("parex") / "_contracts" / "Token.json"))


@dataclass(frozen=True)
class Scenario:
    url: str
    private_key: str
    recipient: str
    value: int

    @property
    def sender(self) -> str:
        return str(Account.from_key(self.private_key).address)

    def as_json(self) -> str:
        return json.dumps(
            {
                "url": self.url,
                "privateKey": self.private_key,
                "recipient": self.recipient,
                "value": str(self.value),
                "artifact": str(token_artifact()),
            }
        )


def run_js(script: str) -> Callable[[Scenario], dict[str, Any]]:
    def run(scenario: Scenario) -> dict[str, Any]:
        done = subprocess.run(
            ["node", str(CLIENTS_DIR / script), scenario.as_json()],
            capture_output=True, text=True, timeout=120, cwd=CLIENTS_DIR,
        )
        if done.returncode != 0:
            raise AssertionError(f"{script} failed ({done.returncode}):\n{done.stderr}")
        return dict(json.loads(done.stdout.strip().splitlines()[-1]))

    return run


def run_web3(scenario: Scenario) -> dict[str, Any]:
    w3 = Web3(Web3.HTTPProvider(scenario.url, request_kwargs={"timeout": 30}))
    account = Account.from_key(scenario.private_key)
    artifact = json.loads(token_artifact().read_text())

    def send(tx: dict[str, Any]) -> Any:
        tx.setdefault("from", account.address)
        tx["nonce"] = w3.eth.get_transaction_count(account.address, "pending")
        tx["chainId"] = w3.eth.chain_id
        tx.setdefault("gas", w3.eth.estimate_gas(tx))
        fees = w3.eth.fee_history(1, "latest")
        tx["maxPriorityFeePerGas"] = w3.eth.max_priority_fee
        tx["maxFeePerGas"] = 2 * fees["baseFeePerGas"][-1] + tx["maxPriorityFeePerGas"]
        signed = account.sign_transaction(tx)
        tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
        return w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60, poll_latency=0.05)

    factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    deploy = send(factory.constructor("Client", "CLT").build_transaction({"from": account.address}))
    token = w3.eth.contract(address=deploy["contractAddress"], abi=artifact["abi"])
    eth = send({"to": scenario.recipient, "value": scenario.value})
    mint = send(token.functions.mintBatch([account.address], MINTED).build_transaction(
        {"from": account.address}
    ))
    transfer_call = token.functions.transfer(scenario.recipient, SENT_TOKENS)
    estimate = transfer_call.estimate_gas({"from": account.address})
    transfer = send(transfer_call.build_transaction({"from": account.address}))
    events = token.events.Transfer.get_logs(from_block=deploy["blockNumber"], to_block="latest")
    history = w3.eth.fee_history(4, "latest", [25, 75])
    return {
        "chainId": w3.eth.chain_id,
        "token": token.address,
        "deployStatus": deploy["status"],
        "ethTransferStatus": eth["status"],
        "mintStatus": mint["status"],
        "transferStatus": transfer["status"],
        "transferGasUsed": transfer["gasUsed"],
        "gasEstimate": estimate,
        "receiptLogs": len(transfer["logs"]),
        "recipientWei": str(w3.eth.get_balance(scenario.recipient)),
        "recipientTokens": str(token.functions.balanceOf(scenario.recipient).call()),
        "transfers": [
            [e["args"]["from"], e["args"]["to"], str(e["args"]["value"])] for e in events
        ],
        "feeHistory": {
            "blocks": len(history["baseFeePerGas"]) - 1,
            "oldestBlock": history["oldestBlock"],
            "rewards": len(history.get("reward", [])),
        },
    }


def run_cast(scenario: Scenario) -> dict[str, Any]:
    cast = client_binary("cast")
    rpc = ["--rpc-url", scenario.url]
    signer = [*rpc, "--private-key", scenario.private_key]

    def call(*args: str) -> str:
        done = subprocess.run(
            [cast, *args], capture_output=True, text=True, timeout=120, cwd=CLIENTS_DIR
        )
        if done.returncode != 0:
            raise AssertionError(f"cast {args[0]} failed:\n{done.stderr}")
        return done.stdout.strip()

    def send(*args: str) -> dict[str, Any]:
        return dict(json.loads(call("send", *signer, "--json", *args)))

    bytecode = json.loads(token_artifact().read_text())["bytecode"]
    deploy = send("--create", bytecode, "constructor(string,string)", "Client", "CLT")
    token = Web3.to_checksum_address(deploy["contractAddress"])
    eth = send(scenario.recipient, "--value", str(scenario.value))
    mint = send(token, "mintBatch(address[],uint256)", f"[{scenario.sender}]", str(MINTED))
    transfer_sig = ("transfer(address,uint256)", scenario.recipient, str(SENT_TOKENS))
    estimate = int(call("estimate", *rpc, "--from", scenario.sender, token, *transfer_sig))
    transfer = send(token, *transfer_sig)
    logs = json.loads(call(
        "logs", *rpc, "--json", "--from-block", str(int(deploy["blockNumber"], 16)),
        "--to-block", "latest", "--address", token, TRANSFER_EVENT,
    ))
    history = json.loads(call("rpc", *rpc, "eth_feeHistory", "0x4", "latest", "[25,75]"))
    balance_of = call("call", *rpc, token, "balanceOf(address)(uint256)", scenario.recipient)

    def topic_address(topic: str) -> str:
        return Web3.to_checksum_address("0x" + topic[-40:])

    return {
        "chainId": int(call("chain-id", *rpc)),
        "token": token,
        "deployStatus": int(deploy["status"], 16),
        "ethTransferStatus": int(eth["status"], 16),
        "mintStatus": int(mint["status"], 16),
        "transferStatus": int(transfer["status"], 16),
        "transferGasUsed": int(transfer["gasUsed"], 16),
        "gasEstimate": estimate,
        "receiptLogs": len(transfer["logs"]),
        "recipientWei": call("balance", *rpc, scenario.recipient),
        "recipientTokens": balance_of.split()[0],
        "transfers": [
            [topic_address(log["topics"][1]), topic_address(log["topics"][2]),
             str(int(log["data"], 16))]
            for log in logs
        ],
        "feeHistory": {
            "blocks": len(history["baseFeePerGas"]) - 1,
            "oldestBlock": int(history["oldestBlock"], 16),
            "rewards": len(history.get("reward") or []),
        },
    }


CLIENTS: dict[str, Callable[[Scenario], dict[str, Any]]] = {
    "web3.py": run_web3,
    "ethers": run_js("ethers_scenario.mjs"),
    "viem": run_js("viem_scenario.mjs"),
    "cast": run_cast,
}


def check_outcome(outcome: dict[str, Any], scenario: Scenario, chain_id: int) -> None:
    """What every client must have seen, whatever the node behind the URL."""
    sender = Web3.to_checksum_address(scenario.sender)
    recipient = Web3.to_checksum_address(scenario.recipient)
    assert outcome["chainId"] == chain_id
    statuses = ("deployStatus", "ethTransferStatus", "mintStatus", "transferStatus")
    assert [outcome[s] for s in statuses] == [1, 1, 1, 1], outcome
    assert int(outcome["recipientWei"]) == scenario.value
    assert int(outcome["recipientTokens"]) == SENT_TOKENS
    assert outcome["receiptLogs"] == 1
    transfers = [[Web3.to_checksum_address(a), Web3.to_checksum_address(b), v]
                 for a, b, v in outcome["transfers"]]
    assert transfers == [
        [ZERO_ADDRESS_CHECKSUM, sender, str(MINTED)],
        [sender, recipient, str(SENT_TOKENS)],
    ]
    # An estimate may exceed what the transaction used, never fall short of it (the transfer ran
    # in the same state it was estimated in), and must stay within the EIP-150 1/64 margin.
    assert outcome["transferGasUsed"] <= outcome["gasEstimate"]
    assert outcome["gasEstimate"] <= outcome["transferGasUsed"] * 64 // 63 + 2_300
    history = outcome["feeHistory"]
    assert 1 <= history["blocks"] <= 4
    assert history["rewards"] == history["blocks"]


ZERO_ADDRESS_CHECKSUM = Web3.to_checksum_address(ZERO_ADDRESS)
