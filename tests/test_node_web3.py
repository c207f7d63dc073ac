"""
``parex node`` through web3.py over a real HTTP socket: deploy a contract, transfer, call,
wait for receipts, read logs, estimate gas, read fee history, filters and geth-style errors.
"""

from __future__ import annotations

import pytest
from eth_account import Account
from node_process import NodeProcess
from web3 import Web3
from web3.exceptions import ContractLogicError, Web3RPCError

from parex import contracts

DEV_KEYS = [
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
]
DEV_ADDRESS = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
RECEIPT_TIMEOUT = 30


def web3(node: NodeProcess) -> Web3:
    return Web3(Web3.HTTPProvider(node.url, request_kwargs={"timeout": 30}))


def send(w3: Web3, key: str, tx: dict[str, object]) -> dict[str, object]:
    account = Account.from_key(key)
    tx = {
        "chainId": w3.eth.chain_id,
        "nonce": w3.eth.get_transaction_count(account.address, "pending"),
        "maxFeePerGas": 10 * 10**9,
        "maxPriorityFeePerGas": 10**9,
        **tx,
    }
    if "gas" not in tx:
        tx["gas"] = w3.eth.estimate_gas({**tx, "from": account.address})  # type: ignore[typeddict-item]
    signed = account.sign_transaction(tx)
    tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
    return dict(w3.eth.wait_for_transaction_receipt(tx_hash, timeout=RECEIPT_TIMEOUT, poll_latency=0.05))


def test_client_basics(parex_node: NodeProcess) -> None:
    w3 = web3(parex_node)
    assert w3.is_connected()
    assert w3.eth.chain_id == 31337
    assert w3.net.version == "31337"
    assert w3.eth.syncing is False
    assert w3.eth.accounts[0] == DEV_ADDRESS
    assert len(w3.eth.accounts) == 10
    assert w3.eth.get_balance(DEV_ADDRESS) == 10_000 * 10**18
    assert w3.client_version.startswith("parex/")
    first = w3.eth.block_number
    genesis = w3.eth.get_block(0)
    assert genesis["number"] == 0 and genesis["baseFeePerGas"] == 10**9
    # The sequencer keeps building (empty) blocks on its interval.
    deadline = first + 2
    while w3.eth.block_number < deadline:
        pass
    latest = w3.eth.get_block("latest")
    parent = w3.eth.get_block(latest["number"] - 1)
    assert latest["parentHash"] == parent["hash"]
    assert w3.eth.get_block(latest["hash"])["number"] == latest["number"]


def test_transfer_deploy_call_logs_estimate(parex_node: NodeProcess) -> None:
    w3 = web3(parex_node)
    recipient = Account.create().address
    receipt = send(w3, DEV_KEYS[0], {"to": recipient, "value": 12345})
    assert receipt["status"] == 1 and receipt["gasUsed"] == 21_000
    assert w3.eth.get_balance(recipient) == 12345
    tx = w3.eth.get_transaction(receipt["transactionHash"])  # type: ignore[arg-type]
    assert tx["from"] == DEV_ADDRESS and tx["to"] == recipient and tx["value"] == 12345
    assert tx["blockNumber"] == receipt["blockNumber"]

    artifact = contracts.load("Token")
    token_factory = w3.eth.contract(abi=list(artifact.abi), bytecode=artifact.bytecode)
    deploy = token_factory.constructor("Parex", "PRX").build_transaction(
        {"from": DEV_ADDRESS, "nonce": w3.eth.get_transaction_count(DEV_ADDRESS, "pending"),
         "maxFeePerGas": 10 * 10**9, "maxPriorityFeePerGas": 10**9}
    )
    receipt = send(w3, DEV_KEYS[0], deploy)  # type: ignore[arg-type]
    address = receipt["contractAddress"]
    assert receipt["status"] == 1 and address
    assert w3.eth.get_code(address) == artifact.deployed_bytecode  # type: ignore[arg-type]
    token = w3.eth.contract(address=address, abi=list(artifact.abi))  # type: ignore[arg-type]
    assert token.functions.name().call() == "Parex"

    mint = token.functions.mintBatch([DEV_ADDRESS], 10**21).build_transaction(
        {"from": DEV_ADDRESS, "nonce": w3.eth.get_transaction_count(DEV_ADDRESS, "pending"),
         "maxFeePerGas": 10 * 10**9, "maxPriorityFeePerGas": 10**9}
    )
    receipt = send(w3, DEV_KEYS[0], mint)  # type: ignore[arg-type]
    assert receipt["status"] == 1
    assert token.functions.balanceOf(DEV_ADDRESS).call() == 10**21

    estimate = token.functions.transfer(recipient, 5).estimate_gas({"from": DEV_ADDRESS})
    transfer = token.functions.transfer(recipient, 5).build_transaction(
        {"from": DEV_ADDRESS, "gas": estimate, "nonce": w3.eth.get_transaction_count(DEV_ADDRESS, "pending"),
         "maxFeePerGas": 10 * 10**9, "maxPriorityFeePerGas": 10**9}
    )
    # The estimate is tight: one gas less fails (on the same state, before the transfer).
    with pytest.raises((ContractLogicError, Web3RPCError)):
        w3.eth.call({"from": DEV_ADDRESS, "to": address, "gas": estimate - 1,
                     "data": transfer["data"]})  # type: ignore[typeddict-item]
    receipt = send(w3, DEV_KEYS[0], transfer)  # type: ignore[arg-type]
    assert receipt["status"] == 1
    assert receipt["gasUsed"] <= estimate
    events = token.events.Transfer().process_receipt(receipt)
    assert len(events) == 1 and events[0]["args"]["value"] == 5

    logs = w3.eth.get_logs({"fromBlock": 0, "toBlock": "latest", "address": address})
    assert [log["transactionHash"] for log in logs][-1] == receipt["transactionHash"]
    assert len(logs) == 2  # the mint and the transfer
    topic = Web3.keccak(text="Transfer(address,address,uint256)")
    to_topic = "0x" + "00" * 12 + recipient[2:].lower()
    only = w3.eth.get_logs({"fromBlock": 0, "address": address, "topics": [topic, None, to_topic]})
    assert len(only) == 1 and only[0]["transactionHash"] == receipt["transactionHash"]
    block_receipts = w3.eth.get_block_receipts(receipt["blockNumber"])  # type: ignore[arg-type]
    assert receipt["transactionHash"] in [r["transactionHash"] for r in block_receipts]

    # Reverts carry geth's code 3, the reason and the revert data.
    with pytest.raises(ContractLogicError) as revert:
        token.functions.transfer(DEV_ADDRESS, 10**6).call({"from": recipient})
    assert "Token: balance" in str(revert.value)
    with pytest.raises(ContractLogicError):
        token.functions.transfer(DEV_ADDRESS, 10**6).estimate_gas({"from": recipient})

    history = w3.eth.fee_history(4, "latest", [10, 90])
    assert len(history["baseFeePerGas"]) == 5 and len(history["reward"]) == 4
    assert all(0 <= r <= 1 for r in history["gasUsedRatio"])
    assert w3.eth.max_priority_fee > 0 and w3.eth.gas_price > 0


def test_block_contents_are_consistent(parex_node: NodeProcess) -> None:
    w3 = web3(parex_node)
    receipt = send(w3, DEV_KEYS[1], {"to": DEV_ADDRESS, "value": 1})
    block = w3.eth.get_block(receipt["blockNumber"], full_transactions=True)  # type: ignore[arg-type]
    assert block["transactions"][receipt["transactionIndex"]]["hash"] == receipt["transactionHash"]
    assert block["gasUsed"] >= receipt["gasUsed"]
    assert block["baseFeePerGas"] > 0
    assert receipt["effectiveGasPrice"] == block["baseFeePerGas"] + 10**9


def test_filters(parex_node: NodeProcess) -> None:
    w3 = web3(parex_node)
    block_filter = w3.eth.filter("latest")
    receipt = send(w3, DEV_KEYS[0], {"to": DEV_ADDRESS, "value": 7})
    hashes = block_filter.get_new_entries()
    assert receipt["blockHash"] in hashes
    assert w3.eth.uninstall_filter(block_filter.filter_id)
    with pytest.raises(Web3RPCError, match="filter not found"):
        w3.eth.get_filter_changes(block_filter.filter_id)


def test_pool_errors_are_geths(parex_node: NodeProcess) -> None:
    w3 = web3(parex_node)
    account = Account.from_key(DEV_KEYS[0])
    base = {"to": DEV_ADDRESS, "value": 1, "gas": 21_000, "maxFeePerGas": 10 * 10**9,
            "maxPriorityFeePerGas": 10**9, "chainId": 31337}
    nonce = w3.eth.get_transaction_count(account.address, "pending")

    def error(**changes: object) -> str:
        signed = account.sign_transaction({**base, "nonce": nonce, **changes})
        with pytest.raises(Web3RPCError) as e:
            w3.eth.send_raw_transaction(signed.raw_transaction)
        return str(e.value)

    assert "invalid chain id" in error(chainId=1)
    assert "nonce too high" in error(nonce=nonce + 1000)
    assert "intrinsic gas too low" in error(gas=20_000)
    assert "underpriced" in error(maxFeePerGas=1, maxPriorityFeePerGas=1)
    assert "insufficient funds" in error(value=10**30)
    send(w3, DEV_KEYS[0], {"to": DEV_ADDRESS, "value": 1})
    assert "nonce too low" in error()
    poor = Account.create()
    signed = poor.sign_transaction({**base, "nonce": 0})
    with pytest.raises(Web3RPCError, match="insufficient funds"):
        w3.eth.send_raw_transaction(signed.raw_transaction)


def _verify_mpt(root: bytes, key: bytes, proof: list[bytes]) -> bytes | None:
    """Walks an MPT proof from ``root`` for keccak(key); the leaf value, or None if absent."""
    import _rlp

    from parex import keccak256

    nibbles = keccak256(key).hex()
    expected = root
    for node in proof:
        assert keccak256(node) == expected, "proof node does not hash to its parent's reference"
        items = _rlp.decode(node)
        assert isinstance(items, list)
        if len(items) == 17:
            if not nibbles:
                value = items[16]
                assert isinstance(value, bytes)
                return value or None
            child = items[int(nibbles[0], 16)]
            nibbles = nibbles[1:]
            if child == b"":
                return None
            assert isinstance(child, bytes)
            expected = child
            continue
        path, value = items
        assert isinstance(path, bytes) and isinstance(value, bytes)
        flag = path[0] >> 4
        encoded = path.hex()[1 if flag & 1 else 2 :]
        if flag >= 2:  # leaf
            return value if encoded == nibbles else None
        if not nibbles.startswith(encoded):
            return None
        nibbles = nibbles[len(encoded) :]
        expected = value
    return None


def test_get_proof_verifies_against_the_state_root(parex_node: NodeProcess) -> None:
    import _rlp

    w3 = web3(parex_node)
    artifact = contracts.load("Token")
    factory = w3.eth.contract(abi=list(artifact.abi), bytecode=artifact.bytecode)
    receipt = send(w3, DEV_KEYS[0], factory.constructor("Proof", "PF").build_transaction(  # type: ignore[arg-type]
        {"from": DEV_ADDRESS, "nonce": w3.eth.get_transaction_count(DEV_ADDRESS, "pending"),
         "maxFeePerGas": 10 * 10**9, "maxPriorityFeePerGas": 10**9}))
    token = receipt["contractAddress"]
    # Freeze the head: read the block and the proof at the same height.
    for _ in range(50):
        number = w3.eth.block_number
        proof = w3.provider.make_request("eth_getProof", [token, ["0x0", "0x1", "0x9"], hex(number)])  # type: ignore[arg-type]
        if "result" in proof:
            break
    result = proof["result"]
    root = bytes(w3.eth.get_block(number)["stateRoot"])
    account = _verify_mpt(root, bytes.fromhex(token[2:]), [bytes.fromhex(n[2:]) for n in result["accountProof"]])  # type: ignore[index]
    assert account is not None
    nonce, balance, storage_hash, code_hash = _rlp.decode(account)  # type: ignore[misc]
    assert "0x" + storage_hash.hex() == result["storageHash"]
    assert "0x" + code_hash.hex() == result["codeHash"] == Web3.keccak(artifact.deployed_bytecode).to_0x_hex()
    assert int.from_bytes(nonce, "big") == int(result["nonce"], 16) == 1
    for item in result["storageProof"]:
        slot = int(item["key"], 16).to_bytes(32, "big")
        value = _verify_mpt(bytes.fromhex(result["storageHash"][2:]), slot, [bytes.fromhex(n[2:]) for n in item["proof"]])
        expected = int(item["value"], 16)
        assert (int.from_bytes(_rlp.decode(value), "big") if value else 0) == expected  # type: ignore[arg-type]
    assert int(result["storageProof"][0]["value"], 16) != 0  # slot 0: the name string
    absent = w3.provider.make_request("eth_getProof", ["0x" + "99" * 20, [], hex(number)])  # type: ignore[arg-type]
    if "result" in absent:
        missing = _verify_mpt(root, bytes([0x99] * 20), [bytes.fromhex(n[2:]) for n in absent["result"]["accountProof"]])
        assert missing is None


def test_transaction_types_0_1_2_4(parex_node: NodeProcess) -> None:
    w3 = web3(parex_node)
    sender = Account.from_key(DEV_KEYS[0])
    authority = Account.from_key(DEV_KEYS[1])
    recipient = Account.create().address
    nonce = w3.eth.get_transaction_count(sender.address, "pending")
    gas_price = 5 * 10**9
    txs = [
        {"to": recipient, "value": 1, "gas": 21_000, "gasPrice": gas_price, "nonce": nonce, "chainId": 31337},
        {"to": recipient, "value": 2, "gas": 30_000, "gasPrice": gas_price, "nonce": nonce + 1, "chainId": 31337,
         "accessList": [{"address": recipient, "storageKeys": ["0x" + "00" * 32]}]},
        {"to": recipient, "value": 3, "gas": 21_000, "maxFeePerGas": gas_price, "maxPriorityFeePerGas": 10**9,
         "nonce": nonce + 2, "chainId": 31337},
    ]
    delegate = "0x" + "00" * 19 + "01"  # any address: the authority's code becomes a delegation
    auth = authority.sign_authorization(
        {"chainId": 31337, "address": delegate, "nonce": w3.eth.get_transaction_count(authority.address)}
    )
    txs.append({"to": recipient, "value": 4, "gas": 100_000, "maxFeePerGas": gas_price,
                "maxPriorityFeePerGas": 10**9, "nonce": nonce + 3, "chainId": 31337, "authorizationList": [auth]})
    hashes = [w3.eth.send_raw_transaction(sender.sign_transaction(tx).raw_transaction) for tx in txs]
    receipts = [w3.eth.wait_for_transaction_receipt(h, timeout=RECEIPT_TIMEOUT, poll_latency=0.05) for h in hashes]
    assert [r["type"] for r in receipts] == [0, 1, 2, 4]
    assert all(r["status"] == 1 for r in receipts)
    assert w3.eth.get_balance(recipient) == 10
    assert w3.eth.get_code(authority.address) == bytes.fromhex("ef0100") + bytes.fromhex(delegate[2:])
    fetched = w3.eth.get_transaction(hashes[3])
    assert fetched["type"] == 4 and len(fetched["authorizationList"]) == 1
    assert w3.eth.get_transaction(hashes[1])["accessList"][0]["address"] == recipient


def test_send_transaction_signs_with_dev_accounts(parex_node: NodeProcess) -> None:
    w3 = web3(parex_node)
    recipient = Account.create().address
    tx_hash = w3.eth.send_transaction({"from": DEV_ADDRESS, "to": recipient, "value": 77})
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=RECEIPT_TIMEOUT, poll_latency=0.05)
    assert receipt["status"] == 1 and receipt["type"] == 2 and receipt["gasUsed"] == 21_000
    assert w3.eth.get_balance(recipient) == 77
    legacy = w3.eth.send_transaction({"from": DEV_ADDRESS, "to": recipient, "value": 1, "gasPrice": 5 * 10**9})
    assert w3.eth.wait_for_transaction_receipt(legacy, timeout=RECEIPT_TIMEOUT, poll_latency=0.05)["type"] == 0
    artifact = contracts.load("Token")
    deploy = w3.eth.contract(abi=list(artifact.abi), bytecode=artifact.bytecode)
    deployed = deploy.constructor("Dev", "DV").transact({"from": DEV_ADDRESS})
    receipt = w3.eth.wait_for_transaction_receipt(deployed, timeout=RECEIPT_TIMEOUT, poll_latency=0.05)
    assert receipt["status"] == 1 and receipt["contractAddress"]
    stranger = Account.create().address
    reply = w3.provider.make_request(  # type: ignore[attr-defined]
        "eth_sendTransaction", [{"from": stranger, "to": recipient, "value": "0x1", "gas": "0x5208"}]
    )
    assert reply["error"]["code"] == -32000 and "unknown account" in reply["error"]["message"]


def test_dev_accounts_sign_messages(parex_node: NodeProcess) -> None:
    from eth_account.messages import encode_defunct, encode_typed_data

    w3 = web3(parex_node)
    message = b"parex"
    signature = w3.eth.sign(DEV_ADDRESS, data=message)
    assert Account.recover_message(encode_defunct(primitive=message), signature=signature) == DEV_ADDRESS
    personal = w3.provider.make_request("personal_sign", ["0x" + message.hex(), DEV_ADDRESS])  # type: ignore[attr-defined]
    assert personal["result"] == "0x" + bytes(signature).hex()
    typed = {
        "types": {
            "EIP712Domain": [{"name": "name", "type": "string"}, {"name": "chainId", "type": "uint256"}],
            "Mail": [{"name": "contents", "type": "string"}],
        },
        "primaryType": "Mail",
        "domain": {"name": "parex", "chainId": 31337},
        "message": {"contents": "hello"},
    }
    reply = w3.provider.make_request("eth_signTypedData_v4", [DEV_ADDRESS, typed])  # type: ignore[attr-defined]
    recovered = Account.recover_message(encode_typed_data(full_message=typed), signature=reply["result"])
    assert recovered == DEV_ADDRESS
    bad = w3.provider.make_request("eth_signTypedData_v4", [DEV_ADDRESS, {"types": 5}])  # type: ignore[attr-defined]
    assert bad["error"]["code"] == -32602
    stranger = w3.provider.make_request("eth_sign", ["0x" + "12" * 20, "0x00"])  # type: ignore[attr-defined]
    assert "unknown account" in stranger["error"]["message"]
