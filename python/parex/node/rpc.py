"""
Ethereum JSON-RPC: request parsing, dispatch and the eth_* methods.

Transport-free: :meth:`Rpc.handle` takes the raw body of one HTTP request (a call or a batch)
and returns the raw response body, so the same dispatcher serves HTTP (``server.py``) and
tests. Errors follow geth: unknown methods are ``-32601 the method X does not exist/is not
available``; a revert is code ``3``, ``execution reverted: <reason>``, with the revert data
in ``data``; bad arguments are ``-32602 invalid argument N: ...``; everything the pool
refuses is ``-32000`` with geth's message.

State is served at the head only (``latest``/``pending``; the node keeps no history of
state), blocks, receipts and logs for every block.
"""

from __future__ import annotations

import json
import platform
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .. import __version__, _core
from .._core import CallInvalid, CallResult, ParexError
from ..engine import Address, BlockEnv, Hash32
from .chain import BlockRecord, Chain, ReceiptRecord, Withdrawal, next_base_fee
from .blobs import BLOB_PARAMS, GAS_PER_BLOB, blob_base_fee, next_blob_base_fee
from .genesis import DevAccount
from .mempool import Mempool, PoolError

MAX_BATCH = 1_000
MAX_LOG_RESULTS = 10_000
MAX_LOG_RANGE = 100_000
MAX_FEE_HISTORY = 1_024
SUGGESTED_TIP = 1_000_000_000
"""The tip ``eth_maxPriorityFeePerGas`` suggests: 1 gwei (blocks are never full on a dev chain)."""
FILTER_TIMEOUT = 300.0
"""Seconds after its last poll that a filter is forgotten (geth: 5 minutes)."""
EMPTY_UNCLES = bytes.fromhex("1dcc4de8dec75d7aab85b567b6ccd41ad312451b948a7413f0a142fd40d49347")
ERROR_SELECTOR = bytes.fromhex("08c379a0")
PANIC_SELECTOR = bytes.fromhex("4e487b71")


class RpcError(Exception):
    def __init__(self, code: int, message: str, data: str | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            out["data"] = self.data
        return out


def invalid(index: int, why: str) -> RpcError:
    return RpcError(-32602, f"invalid argument {index}: {why}")


# -- encoding ---------------------------------------------------------------------------


def qty(value: int) -> str:
    return hex(value)


def data(raw: bytes) -> str:
    return "0x" + raw.hex()


# -- decoding ---------------------------------------------------------------------------


def withdrawal_json(w: Withdrawal) -> dict[str, str]:
    """An EIP-4895 withdrawal as the JSON-RPC and the Engine API show it."""
    return {
        "index": hex(w.index),
        "validatorIndex": hex(w.validator_index),
        "address": "0x" + w.address.hex(),
        "amount": hex(w.amount),
    }


def parse_qty(value: Any, index: int, name: str = "", bits: int = 256) -> int:
    """A hex quantity (or a JSON integer) below ``2**bits``."""
    what = f"{name}: " if name else ""
    number: int | None = None
    if isinstance(value, str) and value.startswith(("0x", "0X")) and 2 < len(value) <= 2 + 64:
        try:
            number = int(value, 16)
        except ValueError:
            pass
    elif isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        number = value
    if number is None:
        raise invalid(index, f"{what}expected a hex quantity, got {json.dumps(value)[:80]}")
    if number >= 1 << bits:
        raise invalid(index, f"{what}{json.dumps(value)[:80]} does not fit in {bits} bits")
    return number


def parse_data(value: Any, index: int, name: str = "", size: int | None = None) -> bytes:
    what = f"{name}: " if name else ""
    if not isinstance(value, str) or not value.startswith(("0x", "0X")):
        raise invalid(index, f"{what}expected 0x-prefixed hex data, got {json.dumps(value)[:80]}")
    text = value[2:]
    if len(text) % 2:
        raise invalid(index, f"{what}hex string of odd length")
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise invalid(index, f"{what}invalid hex string") from None
    if size is not None and len(raw) != size:
        raise invalid(index, f"{what}expected {size} bytes, got {len(raw)}")
    return raw


def revert_reason(output: bytes) -> str | None:
    """The reason of an ``Error(string)`` or ``Panic(uint256)`` revert, if it is one."""
    if output[:4] == ERROR_SELECTOR and len(output) >= 68:
        try:
            offset = int.from_bytes(output[4:36], "big")
            length = int.from_bytes(output[4 + offset : 36 + offset], "big")
            text = output[36 + offset : 36 + offset + length]
            if len(text) == length:
                return text.decode("utf-8", errors="replace")
        except (ValueError, OverflowError):
            return None
    if output[:4] == PANIC_SELECTOR and len(output) == 36:
        return f"panic: 0x{int.from_bytes(output[4:], 'big'):02x}"
    return None


def revert_error(output: bytes) -> RpcError:
    reason = revert_reason(output)
    message = "execution reverted" if reason is None else f"execution reverted: {reason}"
    return RpcError(3, message, data(output) if output else None)


def receipt_bloom(logs: tuple[tuple[Address, tuple[Hash32, ...], bytes], ...]) -> bytes:
    bloom = bytearray(256)
    for address, topics, _ in logs:
        for item in (address, *topics):
            digest = _core.keccak256(item)
            for i in (0, 2, 4):
                bit = ((digest[i] << 8) | digest[i + 1]) & 2047
                bloom[255 - bit // 8] |= 1 << (bit % 8)
    return bytes(bloom)


@dataclass
class LogFilter:
    from_block: int | None
    to_block: int | None
    addresses: set[Address] | None
    topics: list[set[Hash32] | None]
    block_hash: Hash32 | None = None

    def matches(self, address: Address, topics: tuple[Hash32, ...]) -> bool:
        if self.addresses is not None and address not in self.addresses:
            return False
        if len(self.topics) > len(topics):
            return False
        for wanted, topic in zip(self.topics, topics):
            if wanted is not None and topic not in wanted:
                return False
        return True


@dataclass
class Filter:
    kind: str  # "logs", "blocks", "pending"
    log_filter: LogFilter | None
    cursor: int
    """Last block number (or pool sequence) already reported."""
    last_poll: float = field(default_factory=time.monotonic)


class Rpc:
    """The eth_* methods over a chain and its pool."""

    def __init__(self, chain: Chain, mempool: Mempool, dev_accounts: tuple[DevAccount, ...] = ()):
        self.chain = chain
        self.mempool = mempool
        self.dev_accounts = dev_accounts
        self._filters: dict[str, Filter] = {}
        self._filter_lock = threading.Lock()
        self._filter_ids = 0
        self._pending_seen: list[Hash32] = []
        self.methods: dict[str, Callable[[list[Any]], Any]] = {
            "web3_clientVersion": self.web3_client_version,
            "web3_sha3": self.web3_sha3,
            "net_version": lambda p: str(self.chain.chain_id),
            "net_listening": lambda p: True,
            "net_peerCount": lambda p: "0x0",
            "eth_chainId": lambda p: qty(self.chain.chain_id),
            "eth_syncing": lambda p: False,
            "eth_mining": lambda p: True,
            "eth_accounts": lambda p: [data(a.address) for a in self.dev_accounts],
            "eth_blockNumber": lambda p: qty(self.chain.head.number),
            "eth_getBlockByNumber": self.get_block_by_number,
            "eth_getBlockByHash": self.get_block_by_hash,
            "eth_getBlockReceipts": self.get_block_receipts,
            "eth_getBlockTransactionCountByNumber": self.get_block_tx_count_by_number,
            "eth_getBlockTransactionCountByHash": self.get_block_tx_count_by_hash,
            "eth_getUncleCountByBlockNumber": lambda p: "0x0",
            "eth_getUncleCountByBlockHash": lambda p: "0x0",
            "eth_getBalance": self.get_balance,
            "eth_getTransactionCount": self.get_transaction_count,
            "eth_getCode": self.get_code,
            "eth_getStorageAt": self.get_storage_at,
            "eth_getProof": self.get_proof,
            "eth_call": self.call,
            "eth_estimateGas": self.estimate_gas,
            "eth_sendRawTransaction": self.send_raw_transaction,
            "eth_sendTransaction": self.send_transaction,
            "eth_sign": self.eth_sign,
            "personal_sign": self.personal_sign,
            "eth_signTypedData_v4": self.sign_typed_data,
            "eth_getTransactionByHash": self.get_transaction_by_hash,
            "eth_getTransactionByBlockNumberAndIndex": self.get_transaction_by_number_and_index,
            "eth_getTransactionByBlockHashAndIndex": self.get_transaction_by_hash_and_index,
            "eth_getTransactionReceipt": self.get_transaction_receipt,
            "eth_getRawTransactionByHash": self.get_raw_transaction_by_hash,
            "eth_gasPrice": lambda p: qty(next_base_fee(self.chain.head) + SUGGESTED_TIP),
            "eth_maxPriorityFeePerGas": lambda p: qty(SUGGESTED_TIP),
            "eth_blobBaseFee": lambda p: qty(next_blob_base_fee(self.chain.head)),
            "eth_feeHistory": self.fee_history,
            "eth_getLogs": self.get_logs,
            "eth_newFilter": self.new_filter,
            "eth_newBlockFilter": self.new_block_filter,
            "eth_newPendingTransactionFilter": self.new_pending_filter,
            "eth_getFilterChanges": self.get_filter_changes,
            "eth_getFilterLogs": self.get_filter_logs,
            "eth_uninstallFilter": self.uninstall_filter,
        }

    # -- dispatch --------------------------------------------------------------------------

    def handle(self, body: bytes) -> bytes | None:
        """One HTTP body in, one out (``None`` when only notifications came)."""
        try:
            payload = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            return _dump(_error_response(None, RpcError(-32700, f"parse error: {e}")))
        except RecursionError:
            return _dump(_error_response(None, RpcError(-32700, "parse error: nested too deeply")))
        if isinstance(payload, list):
            if not payload:
                return _dump(_error_response(None, RpcError(-32600, "empty batch")))
            if len(payload) > MAX_BATCH:
                return _dump(
                    _error_response(None, RpcError(-32600, f"batch too large: at most {MAX_BATCH} calls"))
                )
            responses = [r for r in (self.handle_one(item) for item in payload) if r is not None]
            return _dump(responses) if responses else None
        response = self.handle_one(payload)
        return None if response is None else _dump(response)

    def handle_one(self, request: Any) -> dict[str, Any] | None:
        if not isinstance(request, dict):
            return _error_response(None, RpcError(-32600, "invalid request: expected a JSON object"))
        request_id = request.get("id")
        is_notification = "id" not in request
        if not isinstance(request_id, (str, int, type(None))) or isinstance(request_id, bool):
            return _error_response(None, RpcError(-32600, "invalid request: bad id"))
        method = request.get("method")
        if not isinstance(method, str):
            return _error_response(request_id, RpcError(-32600, "invalid request: method must be a string"))
        params = request.get("params", [])
        if params is None:
            params = []
        if not isinstance(params, list):
            return _error_response(
                request_id, RpcError(-32602, "invalid params: expected an array of positional arguments")
            )
        handler = self.methods.get(method)
        if handler is None:
            if is_notification:
                return None
            return _error_response(
                request_id, RpcError(-32601, f"the method {method} does not exist/is not available")
            )
        try:
            result = handler(params)
        except RpcError as e:
            response = _error_response(request_id, e)
        except ParexError as e:
            response = _error_response(request_id, RpcError(-32000, str(e)))
        except Exception as e:  # a bug; the server keeps serving
            response = _error_response(request_id, RpcError(-32603, f"internal error: {type(e).__name__}: {e}"))
        else:
            response = {"jsonrpc": "2.0", "id": request_id, "result": result}
        return None if is_notification else response

    # -- helpers ---------------------------------------------------------------------------

    def _block_number(self, tag: Any, index: int) -> int:
        head = self.chain.head.number
        if tag is None or tag in ("latest", "pending", "safe", "finalized"):
            return head
        if tag == "earliest":
            return 0
        if isinstance(tag, dict):
            if "blockHash" in tag:
                block_hash = parse_data(tag["blockHash"], index, "blockHash", 32)
                record = self.chain.block_by_hash(block_hash)
                if record is None:
                    raise RpcError(-32000, f"header for hash 0x{block_hash.hex()} not found")
                return record.number
            if "blockNumber" in tag:
                return self._block_number(tag["blockNumber"], index)
            raise invalid(index, "expected blockNumber or blockHash")
        if isinstance(tag, str) and tag.startswith("0x"):
            return parse_qty(tag, index)
        raise invalid(index, f"unknown block tag {json.dumps(tag)[:40]}")

    def _state_block(self, params: list[Any], index: int) -> None:
        """State is kept at the head only: refuse older blocks clearly."""
        tag = params[index] if len(params) > index else "latest"
        number = self._block_number(tag, index)
        head = self.chain.head.number
        if number > head:
            raise RpcError(-32000, f"block {number} not found (head is {head})")
        if number != head:
            raise RpcError(
                -32000,
                f"historical state for block {number} is not available (parex keeps the head state, block {head})",
            )

    @staticmethod
    def _arg(params: list[Any], index: int, name: str) -> Any:
        if len(params) <= index:
            raise invalid(index, f"missing value for required argument {name}")
        return params[index]

    def _address(self, params: list[Any], index: int) -> Address:
        return parse_data(self._arg(params, index, "address"), index, "address", 20)

    # -- web3 ------------------------------------------------------------------------------

    def web3_client_version(self, params: list[Any]) -> str:
        return f"parex/v{__version__}/{platform.system().lower()}-{platform.machine()}/python{platform.python_version()}"

    def web3_sha3(self, params: list[Any]) -> str:
        return data(_core.keccak256(parse_data(self._arg(params, 0, "data"), 0)))

    # -- blocks ----------------------------------------------------------------------------

    def _block_json(self, record: BlockRecord, full: bool) -> dict[str, Any]:
        if full:
            txs: list[Any] = [self._tx_json(record, i) for i in range(len(record.transactions))]
        else:
            txs = [data(h) for h in record.tx_hashes]
        header = record.header()
        out: dict[str, Any] = {
            "number": qty(record.number),
            "hash": data(record.hash),
            "parentHash": data(record.parent_hash),
            "nonce": "0x" + header.nonce.to_bytes(8, "big").hex(),
            "sha3Uncles": data(EMPTY_UNCLES),
            "logsBloom": data(record.logs_bloom),
            "transactionsRoot": data(record.transactions_root),
            "stateRoot": data(record.state_root),
            "receiptsRoot": data(record.receipts_root),
            "miner": data(record.beneficiary),
            "difficulty": qty(header.difficulty),
            "totalDifficulty": "0x0",
            "extraData": data(record.extra_data),
            "size": qty(record.size),
            "gasLimit": qty(record.gas_limit),
            "gasUsed": qty(record.gas_used),
            "timestamp": qty(record.timestamp),
            "transactions": txs,
            "uncles": [],
            "baseFeePerGas": qty(record.base_fee),
            "withdrawals": [withdrawal_json(w) for w in record.withdrawals],
            "withdrawalsRoot": data(record.withdrawals_root),
            "blobGasUsed": qty(record.blob_gas_used),
            "excessBlobGas": qty(record.excess_blob_gas),
            "parentBeaconBlockRoot": data(record.parent_beacon_block_root),
            "requestsHash": data(record.requests_hash),
            "mixHash": data(record.mix_hash),
        }
        # Fields a fork introduced are absent from blocks before it, as their headers lack them.
        for key, present in (
            ("baseFeePerGas", header.base_fee_per_gas is not None),
            ("withdrawals", header.withdrawals_root is not None),
            ("withdrawalsRoot", header.withdrawals_root is not None),
            ("blobGasUsed", header.blob_gas_used is not None),
            ("excessBlobGas", header.excess_blob_gas is not None),
            ("parentBeaconBlockRoot", header.parent_beacon_block_root is not None),
            ("requestsHash", header.requests_hash is not None),
        ):
            if not present:
                del out[key]
        return out

    def get_block_by_number(self, params: list[Any]) -> dict[str, Any] | None:
        number = self._block_number(self._arg(params, 0, "number"), 0)
        full = bool(params[1]) if len(params) > 1 else False
        record = self.chain.block(number)
        return None if record is None else self._block_json(record, full)

    def get_block_by_hash(self, params: list[Any]) -> dict[str, Any] | None:
        block_hash = parse_data(self._arg(params, 0, "hash"), 0, "hash", 32)
        full = bool(params[1]) if len(params) > 1 else False
        record = self.chain.block_by_hash(block_hash)
        return None if record is None else self._block_json(record, full)

    def get_block_receipts(self, params: list[Any]) -> list[dict[str, Any]] | None:
        record = self.chain.block(self._block_number(self._arg(params, 0, "block"), 0))
        if record is None:
            return None
        return [self._receipt_json(record, i) for i in range(len(record.transactions))]

    def get_block_tx_count_by_number(self, params: list[Any]) -> str | None:
        record = self.chain.block(self._block_number(self._arg(params, 0, "block"), 0))
        return None if record is None else qty(len(record.transactions))

    def get_block_tx_count_by_hash(self, params: list[Any]) -> str | None:
        record = self.chain.block_by_hash(parse_data(self._arg(params, 0, "hash"), 0, "hash", 32))
        return None if record is None else qty(len(record.transactions))

    # -- state -----------------------------------------------------------------------------

    def _account(self, address: Address) -> tuple[int, int]:
        with self.chain.lock:
            account = self.chain.state.get_account(address)
        return (0, 0) if account is None else (account[0], account[1])

    def get_balance(self, params: list[Any]) -> str:
        address = self._address(params, 0)
        self._state_block(params, 1)
        return qty(self._account(address)[0])

    def get_transaction_count(self, params: list[Any]) -> str:
        address = self._address(params, 0)
        tag = params[1] if len(params) > 1 else "latest"
        if tag == "pending":
            nonce = self._account(address)[1]
            return qty(self.mempool.pending_nonce(address, nonce))
        self._state_block(params, 1)
        return qty(self._account(address)[1])

    def get_code(self, params: list[Any]) -> str:
        address = self._address(params, 0)
        self._state_block(params, 1)
        with self.chain.lock:
            return data(self.chain.state.get_code(address))

    def get_storage_at(self, params: list[Any]) -> str:
        address = self._address(params, 0)
        slot_arg = self._arg(params, 1, "slot")
        if isinstance(slot_arg, str) and slot_arg.startswith("0x") and len(slot_arg) > 2:
            try:
                slot = int(slot_arg, 16)
            except ValueError:
                raise invalid(1, "slot: invalid hex") from None
            if slot >= 2**256:
                raise invalid(1, "slot: more than 32 bytes")
        else:
            raise invalid(1, "slot: expected a hex storage key")
        self._state_block(params, 2)
        with self.chain.lock:
            value = self.chain.state.get_storage(address, slot)
        return data(value.to_bytes(32, "big"))

    def get_proof(self, params: list[Any]) -> dict[str, Any]:
        address = self._address(params, 0)
        keys = self._arg(params, 1, "storageKeys")
        if not isinstance(keys, list):
            raise invalid(1, "storageKeys: expected an array of 32-byte keys")
        slots = []
        for key in keys:
            if not isinstance(key, str) or not key.startswith("0x") or len(key) > 66:
                raise invalid(1, "storageKeys: expected hex keys of at most 32 bytes")
            try:
                slots.append(int(key, 16))
            except ValueError:
                raise invalid(1, "storageKeys: invalid hex") from None
        self._state_block(params, 2)
        with self.chain.lock:
            state = self.chain.state.copy()
        proof = _core.account_proof(state, address, slots)
        return {
            "address": data(address),
            "balance": qty(proof["balance"]),
            "nonce": qty(proof["nonce"]),
            "codeHash": data(proof["code_hash"]),
            "storageHash": data(proof["storage_root"]),
            "accountProof": [data(n) for n in proof["account_proof"]],
            "storageProof": [
                {"key": key, "value": qty(p["value"]), "proof": [data(n) for n in p["proof"]]}
                for key, p in zip(keys, proof["storage_proofs"])
            ],
        }

    # -- execution -------------------------------------------------------------------------

    def _call_args(self, params: list[Any]) -> dict[str, Any]:
        request = self._arg(params, 0, "transaction")
        if not isinstance(request, dict):
            raise invalid(0, "expected a transaction call object")
        out: dict[str, Any] = {}
        if request.get("from") is not None:
            out["sender"] = parse_data(request["from"], 0, "from", 20)
        if request.get("to") is not None:
            out["to"] = parse_data(request["to"], 0, "to", 20)
        if request.get("gas") is not None:
            out["gas"] = parse_qty(request["gas"], 0, "gas", 64)
            if out["gas"] > self.chain.gas_limit:
                out["gas"] = self.chain.gas_limit
        price = request.get("gasPrice")
        max_fee = request.get("maxFeePerGas")
        if price is not None and max_fee is not None:
            raise invalid(0, "both gasPrice and (maxFeePerGas or maxPriorityFeePerGas) specified")
        if price is not None:
            out["max_fee_per_gas"] = parse_qty(price, 0, "gasPrice", 128)
        if max_fee is not None:
            out["max_fee_per_gas"] = parse_qty(max_fee, 0, "maxFeePerGas", 128)
        if request.get("maxPriorityFeePerGas") is not None:
            out["max_priority_fee_per_gas"] = parse_qty(request["maxPriorityFeePerGas"], 0, "maxPriorityFeePerGas", 128)
            out.setdefault(
                "max_fee_per_gas",
                min(out["max_priority_fee_per_gas"] + next_base_fee(self.chain.head), (1 << 128) - 1),
            )
        if request.get("value") is not None:
            out["value"] = parse_qty(request["value"], 0, "value")
        payload = request.get("input", request.get("data"))
        if request.get("input") is not None and request.get("data") is not None:
            if request["input"] != request["data"]:
                raise invalid(0, "both input and data specified and they differ")
        if payload is not None:
            out["input"] = parse_data(payload, 0, "input")
        if request.get("nonce") is not None:
            out["nonce"] = parse_qty(request["nonce"], 0, "nonce", 64)
        if request.get("accessList") is not None:
            items = request["accessList"]
            if not isinstance(items, list):
                raise invalid(0, "accessList: expected an array")
            access: list[tuple[bytes, list[bytes]]] = []
            for item in items:
                if not isinstance(item, dict):
                    raise invalid(0, "accessList: expected objects")
                keys = item.get("storageKeys", [])
                if not isinstance(keys, list):
                    raise invalid(0, "accessList: storageKeys must be an array")
                access.append(
                    (
                        parse_data(item.get("address"), 0, "accessList.address", 20),
                        [parse_data(k, 0, "accessList.storageKeys", 32) for k in keys],
                    )
                )
            out["access_list"] = access
        return out

    def _call_env(self, params: list[Any], index: int) -> tuple[BlockEnv, _core.State]:
        tag = params[index] if len(params) > index else "latest"
        with self.chain.lock:
            if tag == "pending":
                env = self.chain.pending_env()
            else:
                self._state_block(params, index)
                head = self.chain.head
                env = self.chain.pending_env().replace(
                    number=head.number, timestamp=head.timestamp, base_fee=head.base_fee
                )
            return env, self.chain.state.copy()

    @staticmethod
    def _invalid_call(e: CallInvalid) -> RpcError:
        text = str(e)
        if "funds" in text or "balance" in text:
            return RpcError(-32000, f"insufficient funds for gas * price + value: {text}")
        return RpcError(-32000, text)

    def call(self, params: list[Any]) -> str:
        args = self._call_args(params)
        env, state = self._call_env(params, 1)
        try:
            result = _core.call(env, state, **args)
        except CallInvalid as e:
            raise self._invalid_call(e) from None
        if result.reverted:
            raise revert_error(result.output)
        if not result.success:
            raise RpcError(-32000, result.halt_reason or "execution failed")
        return data(result.output)

    def estimate_gas(self, params: list[Any]) -> str:
        args = self._call_args(params)
        env, state = self._call_env(params, 1)
        try:
            outcome = _core.estimate_gas(env, state, **args)
        except CallInvalid as e:
            raise self._invalid_call(e) from None
        if isinstance(outcome, CallResult):
            if outcome.reverted:
                raise revert_error(outcome.output)
            if outcome.halt_reason == "out of gas":
                cap = args.get("gas", env.gas_limit)
                raise RpcError(-32000, f"gas required exceeds allowance ({cap})")
            raise RpcError(-32000, outcome.halt_reason or "execution failed")
        return qty(outcome)

    # -- transactions ----------------------------------------------------------------------

    def send_raw_transaction(self, params: list[Any]) -> str:
        raw = parse_data(self._arg(params, 0, "data"), 0, "data")
        if self.chain.failed:
            raise RpcError(-32000, f"node is not accepting transactions: {self.chain.failed}")
        head = self.chain.head
        try:
            tx_hash = self.mempool.add(raw, self._account, next_base_fee(head), next_blob_base_fee(head))
        except PoolError as e:
            raise RpcError(-32000, str(e)) from None
        return data(tx_hash)

    def _dev_key(self, value: Any, index: int) -> bytes:
        address = parse_data(value, index, "address", 20)
        key = next((a.secret for a in self.dev_accounts if a.address == address), None)
        if key is None:
            raise RpcError(-32000, f"unknown account 0x{address.hex()}: only the dev accounts sign on this node")
        return key

    def _sign_message(self, key: bytes, message: bytes) -> str:
        from eth_account import Account as EthAccount
        from eth_account.messages import encode_defunct

        signed = EthAccount.sign_message(encode_defunct(primitive=message), key)
        return data(bytes(signed.signature))

    def eth_sign(self, params: list[Any]) -> str:
        """EIP-191 personal message signature by a dev account: ``[address, data]``."""
        key = self._dev_key(self._arg(params, 0, "address"), 0)
        return self._sign_message(key, parse_data(self._arg(params, 1, "data"), 1, "data"))

    def personal_sign(self, params: list[Any]) -> str:
        """As ``eth_sign`` with the arguments swapped: ``[data, address]``."""
        key = self._dev_key(self._arg(params, 1, "address"), 1)
        return self._sign_message(key, parse_data(self._arg(params, 0, "data"), 0, "data"))

    def sign_typed_data(self, params: list[Any]) -> str:
        """EIP-712 signature by a dev account: ``[address, typedData]`` (object or JSON text)."""
        from eth_account import Account as EthAccount

        key = self._dev_key(self._arg(params, 0, "address"), 0)
        typed = self._arg(params, 1, "typedData")
        if isinstance(typed, str):
            try:
                typed = json.loads(typed)
            except json.JSONDecodeError:
                raise invalid(1, "typedData: not JSON") from None
        if not isinstance(typed, dict):
            raise invalid(1, "typedData: expected an EIP-712 object")
        try:
            signed = EthAccount.sign_typed_data(key, full_message=typed)
        except Exception as e:  # eth-account raises many types for malformed typed data
            raise invalid(1, f"typedData: {type(e).__name__}: {e}") from None
        return data(bytes(signed.signature))

    def send_transaction(self, params: list[Any]) -> str:
        """
        Signs with a dev account's key and submits (as anvil and Hardhat do): ``from`` must
        be one of ``eth_accounts``. Missing fields are filled: nonce (pending), gas
        (estimate), fees (EIP-1559: tip 1 gwei, cap twice the next base fee plus the tip;
        ``gasPrice`` makes it a legacy transaction).
        """
        from eth_account import Account as EthAccount
        from eth_utils.address import to_checksum_address

        request = self._arg(params, 0, "transaction")
        if not isinstance(request, dict) or request.get("from") is None:
            raise invalid(0, "expected a transaction object with from")
        sender = parse_data(request["from"], 0, "from", 20)
        key = next((a.secret for a in self.dev_accounts if a.address == sender), None)
        if key is None:
            raise RpcError(-32000, f"unknown account 0x{sender.hex()}: only the dev accounts sign on this node")
        args = self._call_args([request])
        tx: dict[str, Any] = {"chainId": self.chain.chain_id, "value": args.get("value", 0), "data": args.get("input", b"")}
        if "to" in args:
            tx["to"] = to_checksum_address(args["to"])
        tx["nonce"] = args.get("nonce", self.mempool.pending_nonce(sender, self._account(sender)[1]))
        if "gasPrice" in request and request["gasPrice"] is not None:
            tx["gasPrice"] = args["max_fee_per_gas"]
        else:
            tip = args.get("max_priority_fee_per_gas", SUGGESTED_TIP)
            tx["maxPriorityFeePerGas"] = tip
            tx["maxFeePerGas"] = (
                parse_qty(request["maxFeePerGas"], 0, "maxFeePerGas", 128)
                if request.get("maxFeePerGas") is not None
                else 2 * next_base_fee(self.chain.head) + tip
            )
        if "access_list" in args:
            tx["accessList"] = [
                {"address": to_checksum_address(a), "storageKeys": ["0x" + k.hex() for k in keys]}
                for a, keys in args["access_list"]
            ]
        if "gas" in args:
            tx["gas"] = args["gas"]
        else:
            estimate_request = dict(request)
            estimate_request.pop("nonce", None)
            tx["gas"] = int(self.estimate_gas([estimate_request, "pending"]), 16)
        signed = EthAccount.sign_transaction(tx, key)
        return self.send_raw_transaction([data(bytes(signed.raw_transaction))])

    def _tx_json(self, record: BlockRecord | None, index: int, raw: bytes | None = None) -> dict[str, Any]:
        if record is not None:
            raw = record.transactions[index]
        assert raw is not None
        # Senders of block transactions are in the record; recover only pool transactions.
        info = _core.decode_transaction(raw, recover=record is None)
        sender = record.senders[index] if record is not None else info["sender"]
        assert sender is not None
        tip = info["max_priority_fee_per_gas"]
        out: dict[str, Any] = {
            "hash": data(info["hash"]),
            "type": qty(info["type"]),
            "nonce": qty(info["nonce"]),
            "from": data(sender),
            "to": None if info["to"] is None else data(info["to"]),
            "value": qty(info["value"]),
            "gas": qty(info["gas"]),
            "input": data(info["input"]),
            "v": qty(info["v"]),
            "r": qty(info["r"]),
            "s": qty(info["s"]),
            "blockHash": None,
            "blockNumber": None,
            "transactionIndex": None,
        }
        if info["chain_id"] is not None:
            out["chainId"] = qty(info["chain_id"])
        if info["type"] != 0:
            out["yParity"] = qty(info["y_parity"])
            out["accessList"] = [
                {"address": data(a), "storageKeys": [data(k) for k in keys]}
                for a, keys in info["access_list"]
            ]
        if tip is not None:
            out["maxFeePerGas"] = qty(info["max_fee_per_gas"])
            out["maxPriorityFeePerGas"] = qty(tip)
        if info["type"] == 3:
            out["maxFeePerBlobGas"] = qty(info["max_fee_per_blob_gas"] or 0)
            out["blobVersionedHashes"] = [data(h) for h in info["blob_versioned_hashes"]]
        if info["type"] == 4:
            out["authorizationList"] = [
                {
                    "chainId": qty(a["chain_id"]),
                    "address": data(a["address"]),
                    "nonce": qty(a["nonce"]),
                    "yParity": qty(a["y_parity"]),
                    "r": qty(a["r"]),
                    "s": qty(a["s"]),
                }
                for a in info["authorization_list"]
            ]
        if record is not None:
            out["blockHash"] = data(record.hash)
            out["blockNumber"] = qty(record.number)
            out["transactionIndex"] = qty(index)
            out["gasPrice"] = qty(record.receipts[index].effective_gas_price)
            out["blockTimestamp"] = qty(record.timestamp)
        else:
            out["gasPrice"] = qty(info["max_fee_per_gas"])
        return out

    def get_transaction_by_hash(self, params: list[Any]) -> dict[str, Any] | None:
        tx_hash = parse_data(self._arg(params, 0, "hash"), 0, "hash", 32)
        found = self.chain.transaction(tx_hash)
        if found is not None:
            return self._tx_json(found[0], found[1])
        pooled = self.mempool.get(tx_hash)
        if pooled is not None:
            return self._tx_json(None, 0, pooled.raw)
        return None

    def get_raw_transaction_by_hash(self, params: list[Any]) -> str | None:
        tx_hash = parse_data(self._arg(params, 0, "hash"), 0, "hash", 32)
        found = self.chain.transaction(tx_hash)
        if found is not None:
            return data(found[0].transactions[found[1]])
        pooled = self.mempool.get(tx_hash)
        return None if pooled is None else data(pooled.raw)

    def get_transaction_by_number_and_index(self, params: list[Any]) -> dict[str, Any] | None:
        record = self.chain.block(self._block_number(self._arg(params, 0, "block"), 0))
        index = parse_qty(self._arg(params, 1, "index"), 1)
        if record is None or index >= len(record.transactions):
            return None
        return self._tx_json(record, index)

    def get_transaction_by_hash_and_index(self, params: list[Any]) -> dict[str, Any] | None:
        record = self.chain.block_by_hash(parse_data(self._arg(params, 0, "hash"), 0, "hash", 32))
        index = parse_qty(self._arg(params, 1, "index"), 1)
        if record is None or index >= len(record.transactions):
            return None
        return self._tx_json(record, index)

    def _log_index_base(self, record: BlockRecord, index: int) -> int:
        return sum(len(r.logs) for r in record.receipts[:index])

    def _log_json(
        self, record: BlockRecord, tx_index: int, log_index: int, log: tuple[Address, tuple[Hash32, ...], bytes]
    ) -> dict[str, Any]:
        address, topics, payload = log
        return {
            "address": data(address),
            "topics": [data(t) for t in topics],
            "data": data(payload),
            "blockNumber": qty(record.number),
            "blockHash": data(record.hash),
            "blockTimestamp": qty(record.timestamp),
            "transactionHash": data(record.tx_hashes[tx_index]),
            "transactionIndex": qty(tx_index),
            "logIndex": qty(log_index),
            "removed": False,
        }

    def _receipt_json(self, record: BlockRecord, index: int) -> dict[str, Any]:
        receipt: ReceiptRecord = record.receipts[index]
        info = _core.decode_transaction(record.transactions[index], recover=False)
        base = self._log_index_base(record, index)
        out: dict[str, Any] = {
            "transactionHash": data(record.tx_hashes[index]),
            "transactionIndex": qty(index),
            "blockHash": data(record.hash),
            "blockNumber": qty(record.number),
            "from": data(record.senders[index]),
            "to": None if info["to"] is None else data(info["to"]),
            "cumulativeGasUsed": qty(receipt.cumulative_gas_used),
            "gasUsed": qty(receipt.gas_used),
            "effectiveGasPrice": qty(receipt.effective_gas_price),
            "contractAddress": None if receipt.contract_address is None else data(receipt.contract_address),
            "logs": [self._log_json(record, index, base + i, log) for i, log in enumerate(receipt.logs)],
            "logsBloom": data(receipt_bloom(receipt.logs)),
            "status": "0x1" if receipt.success else "0x0",
            "type": qty(receipt.tx_type),
        }
        if info["type"] == 3:
            out["blobGasUsed"] = qty(GAS_PER_BLOB * len(info["blob_versioned_hashes"]))
            out["blobGasPrice"] = qty(blob_base_fee(record.excess_blob_gas))
        return out

    def get_transaction_receipt(self, params: list[Any]) -> dict[str, Any] | None:
        tx_hash = parse_data(self._arg(params, 0, "hash"), 0, "hash", 32)
        found = self.chain.transaction(tx_hash)
        return None if found is None else self._receipt_json(found[0], found[1])

    # -- fees ------------------------------------------------------------------------------

    def fee_history(self, params: list[Any]) -> dict[str, Any]:
        count = parse_qty(self._arg(params, 0, "blockCount"), 0)
        newest = self._block_number(self._arg(params, 1, "newestBlock"), 1)
        percentiles = params[2] if len(params) > 2 and params[2] is not None else []
        if not isinstance(percentiles, list) or not all(
            isinstance(p, (int, float)) and not isinstance(p, bool) and 0 <= p <= 100 for p in percentiles
        ):
            raise invalid(2, "rewardPercentiles: expected numbers between 0 and 100")
        if any(b < a for a, b in zip(percentiles, percentiles[1:])):
            raise invalid(2, "rewardPercentiles: must be in ascending order")
        head = self.chain.head.number
        if newest > head:
            raise RpcError(-32000, f"request beyond head block: requested {newest}, head {head}")
        count = min(count, MAX_FEE_HISTORY, newest + 1)
        if count == 0:
            return {"oldestBlock": "0x0", "baseFeePerGas": [], "gasUsedRatio": [], "baseFeePerBlobGas": [], "blobGasUsedRatio": []}
        oldest = newest - count + 1
        base_fees: list[str] = []
        blob_fees: list[str] = []
        blob_ratios: list[float] = []
        ratios: list[float] = []
        rewards: list[list[str]] = []
        last: BlockRecord | None = None
        for number in range(oldest, newest + 1):
            record = self.chain.block(number)
            assert record is not None
            last = record
            base_fees.append(qty(record.base_fee))
            blob_fees.append(qty(blob_base_fee(record.excess_blob_gas)))
            blob_ratios.append(record.blob_gas_used / BLOB_PARAMS.max_blob_gas)
            ratios.append(record.gas_used / record.gas_limit if record.gas_limit else 0.0)
            if percentiles:
                rewards.append(self._rewards(record, percentiles))
        assert last is not None
        base_fees.append(qty(next_base_fee(last)))
        blob_fees.append(qty(next_blob_base_fee(last)))
        out: dict[str, Any] = {
            "oldestBlock": qty(oldest),
            "baseFeePerGas": base_fees,
            "gasUsedRatio": ratios,
            "baseFeePerBlobGas": blob_fees,
            "blobGasUsedRatio": blob_ratios,
        }
        if percentiles:
            out["reward"] = rewards
        return out

    @staticmethod
    def _rewards(record: BlockRecord, percentiles: list[float]) -> list[str]:
        if not record.receipts:
            return ["0x0"] * len(percentiles)
        tips = sorted(
            (r.effective_gas_price - record.base_fee, r.gas_used) for r in record.receipts
        )
        total = sum(g for _, g in tips)
        out = []
        for p in percentiles:
            threshold = total * p / 100
            acc = 0
            chosen = tips[-1][0]
            for tip, gas in tips:
                acc += gas
                if acc >= threshold:
                    chosen = tip
                    break
            out.append(qty(max(chosen, 0)))
        return out

    # -- logs and filters ------------------------------------------------------------------

    def _parse_filter(self, params: list[Any]) -> LogFilter:
        spec = params[0] if params else {}
        if not isinstance(spec, dict):
            raise invalid(0, "expected a filter object")
        block_hash = None
        if spec.get("blockHash") is not None:
            if spec.get("fromBlock") is not None or spec.get("toBlock") is not None:
                raise invalid(0, "cannot specify both blockHash and fromBlock/toBlock")
            block_hash = parse_data(spec["blockHash"], 0, "blockHash", 32)
        from_block = None if spec.get("fromBlock") in (None, "latest") else self._block_number(spec["fromBlock"], 0)
        to_block = None if spec.get("toBlock") in (None, "latest", "pending") else self._block_number(spec["toBlock"], 0)
        addresses: set[Address] | None = None
        raw_address = spec.get("address")
        if isinstance(raw_address, str):
            addresses = {parse_data(raw_address, 0, "address", 20)}
        elif isinstance(raw_address, list):
            addresses = {parse_data(a, 0, "address", 20) for a in raw_address}
        elif raw_address is not None:
            raise invalid(0, "address: expected an address or an array of addresses")
        topics: list[set[Hash32] | None] = []
        raw_topics = spec.get("topics") or []
        if not isinstance(raw_topics, list) or len(raw_topics) > 4:
            raise invalid(0, "topics: expected an array of at most 4 positions")
        for position in raw_topics:
            if position is None:
                topics.append(None)
            elif isinstance(position, str):
                topics.append({parse_data(position, 0, "topics", 32)})
            elif isinstance(position, list):
                topics.append({parse_data(t, 0, "topics", 32) for t in position} if position else None)
            else:
                raise invalid(0, "topics: expected null, a topic or an array of topics")
        return LogFilter(from_block, to_block, addresses, topics, block_hash)

    def _logs(self, log_filter: LogFilter, first: int, last: int) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if log_filter.block_hash is not None:
            record = self.chain.block_by_hash(log_filter.block_hash)
            if record is None:
                raise RpcError(-32000, "unknown block")
            records = [record]
        else:
            if last - first + 1 > MAX_LOG_RANGE:
                raise RpcError(-32005, f"block range too large: at most {MAX_LOG_RANGE} blocks")
            records = []
            for number in range(first, last + 1):
                record = self.chain.block(number)
                if record is not None:
                    records.append(record)
        for record in records:
            log_index = 0
            for tx_index, receipt in enumerate(record.receipts):
                for log in receipt.logs:
                    if log_filter.matches(log[0], log[1]):
                        out.append(self._log_json(record, tx_index, log_index, log))
                        if len(out) > MAX_LOG_RESULTS:
                            raise RpcError(-32005, f"query returned more than {MAX_LOG_RESULTS} results")
                    log_index += 1
        return out

    def get_logs(self, params: list[Any]) -> list[dict[str, Any]]:
        log_filter = self._parse_filter(params)
        head = self.chain.head.number
        first = head if log_filter.from_block is None else log_filter.from_block
        last = head if log_filter.to_block is None else min(log_filter.to_block, head)
        if first > last and log_filter.block_hash is None:
            if log_filter.to_block is not None and first > log_filter.to_block:
                raise RpcError(-32000, "invalid block range params")
            return []
        return self._logs(log_filter, first, last)

    def _install(self, new: Filter) -> str:
        with self._filter_lock:
            now = time.monotonic()
            for stale in [k for k, f in self._filters.items() if now - f.last_poll > FILTER_TIMEOUT]:
                del self._filters[stale]
            self._filter_ids += 1
            filter_id = qty(self._filter_ids)
            self._filters[filter_id] = new
        return filter_id

    def new_filter(self, params: list[Any]) -> str:
        log_filter = self._parse_filter(params)
        return self._install(Filter("logs", log_filter, self.chain.head.number))

    def new_block_filter(self, params: list[Any]) -> str:
        return self._install(Filter("blocks", None, self.chain.head.number))

    def new_pending_filter(self, params: list[Any]) -> str:
        pending = self.mempool.pending()
        return self._install(Filter("pending", None, pending[-1].seq if pending else -1))

    def _filter(self, params: list[Any]) -> tuple[str, Filter]:
        filter_id = self._arg(params, 0, "id")
        if not isinstance(filter_id, str):
            raise invalid(0, "expected a filter id")
        with self._filter_lock:
            found = self._filters.get(filter_id.lower())
        if found is None:
            raise RpcError(-32000, "filter not found")
        found.last_poll = time.monotonic()
        return filter_id.lower(), found

    def get_filter_changes(self, params: list[Any]) -> list[Any]:
        _, found = self._filter(params)
        head = self.chain.head.number
        if found.kind == "pending":
            fresh = [t for t in self.mempool.pending() if t.seq > found.cursor]
            if fresh:
                found.cursor = fresh[-1].seq
            return [data(t.hash) for t in fresh]
        first, found.cursor = found.cursor + 1, head
        if found.kind == "blocks":
            out = []
            for number in range(first, head + 1):
                record = self.chain.block(number)
                if record is not None:
                    out.append(data(record.hash))
            return out
        assert found.log_filter is not None
        lf = found.log_filter
        if lf.block_hash is not None:
            return []
        first = max(first, lf.from_block or 0)
        last = head if lf.to_block is None else min(head, lf.to_block)
        return self._logs(lf, first, last) if first <= last else []

    def get_filter_logs(self, params: list[Any]) -> list[dict[str, Any]]:
        _, found = self._filter(params)
        if found.log_filter is None:
            raise RpcError(-32000, "filter not found")
        lf = found.log_filter
        head = self.chain.head.number
        first = head if lf.from_block is None else lf.from_block
        last = head if lf.to_block is None else min(lf.to_block, head)
        if lf.block_hash is None and first > last:
            return []
        return self._logs(lf, first, last)

    def uninstall_filter(self, params: list[Any]) -> bool:
        filter_id = self._arg(params, 0, "id")
        if not isinstance(filter_id, str):
            raise invalid(0, "expected a filter id")
        with self._filter_lock:
            return self._filters.pop(filter_id.lower(), None) is not None


def _error_response(request_id: Any, error: RpcError) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "error": error.to_json()}


def _dump(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()
