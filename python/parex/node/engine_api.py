"""
The Engine API endpoint (authrpc, default 127.0.0.1:8551), behind JWT authentication.

Every request must carry ``Authorization: Bearer <token>``: an HS256 JWT signed with the
32-byte secret of ``--jwt-secret`` (hex; created with a random secret when the file does not
exist, as geth and reth do), whose ``iat`` claim is within 60 seconds of the node's clock.
Anything else is refused with HTTP 401 before the body is read.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .. import __version__, _core
from .._core import ParexError
from .chain import BlockAttributes, BlockRecord, Chain, ChainError, Prepared, Withdrawal, next_base_fee
from .blobs import BLOB_PARAMS, GAS_PER_BLOB, BlobSidecar, blob_base_fee, next_blob_base_fee
from .mempool import Mempool
from .rpc import Rpc, RpcError, parse_data, parse_qty, withdrawal_json

IAT_WINDOW_SECONDS = 60
CAPABILITIES = [
    "engine_exchangeCapabilities",
    "engine_forkchoiceUpdatedV3",
    "engine_getPayloadV3",
    "engine_getPayloadV4",
    "engine_newPayloadV3",
    "engine_newPayloadV4",
    "engine_getClientVersionV1",
    "txpoolExt_getTxs",
]


class JwtError(ValueError):
    pass


def load_jwt_secret(path: Path) -> bytes:
    """Reads the hex secret at ``path``, writing a fresh random one when the file is absent."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    text = path.read_text().strip()
    if text.startswith(("0x", "0X")):
        text = text[2:]
    try:
        secret = bytes.fromhex(text)
    except ValueError:
        raise JwtError(f"JWT secret file {path} is not hex") from None
    if len(secret) != 32:
        raise JwtError(f"JWT secret file {path} holds {len(secret)} bytes; expected 32")
    return secret


def check_token(header: str | None, secret: bytes, now: float | None = None) -> None:
    """Raises ``JwtError`` unless ``header`` is a valid ``Bearer`` HS256 token."""
    if not header or not header.startswith("Bearer "):
        raise JwtError("missing bearer token")
    token = header[len("Bearer ") :].strip()
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            options={"verify_exp": True, "verify_iat": False, "require": ["iat"]},
        )
    except jwt.PyJWTError as e:
        raise JwtError(f"invalid token: {e}") from None
    iat = claims.get("iat")
    if not isinstance(iat, (int, float)) or isinstance(iat, bool):
        raise JwtError("invalid token: iat is not a number")
    current = time.time() if now is None else now
    if abs(current - iat) > IAT_WINDOW_SECONDS:
        raise JwtError(f"stale token: iat {int(iat)} is more than {IAT_WINDOW_SECONDS}s from now")


PAYLOAD_CACHE = 64
UNKNOWN_PAYLOAD = -38001
INVALID_FORKCHOICE_STATE = -38002
INVALID_PAYLOAD_ATTRIBUTES = -38003


class EngineError(Exception):
    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def _status(status: str, latest_valid: bytes | None, error: str | None = None) -> dict[str, Any]:
    return {
        "status": status,
        "latestValidHash": None if latest_valid is None else "0x" + latest_valid.hex(),
        "validationError": error,
    }


class EngineApi:
    """
    The engine_* methods over one linear chain. A consensus client (OP-Stack op-node, an
    Evolve node) drives block production: forkchoiceUpdated with payload attributes builds a
    payload, getPayload returns it, newPayload validates and commits it, forkchoiceUpdated
    makes it the head. parex keeps one chain: a payload must extend the head (no reorgs).
    """

    def __init__(self, chain: Chain, mempool: Mempool, rpc: Rpc):
        self.chain = chain
        self.mempool = mempool
        self.rpc = rpc
        self._payloads: OrderedDict[bytes, Prepared] = OrderedDict()
        # The sidecars of each payload's pool blob transactions, by transaction hash: taken
        # when the payload is built, so getPayload's blobsBundle does not depend on the pool.
        self._sidecars: dict[bytes, dict[bytes, BlobSidecar]] = {}
        self._lock = threading.Lock()
        self.methods: dict[str, Callable[[list[Any]], Any]] = {
            "engine_exchangeCapabilities": lambda p: CAPABILITIES,
            "engine_forkchoiceUpdatedV3": self.forkchoice_updated,
            "engine_forkchoiceUpdatedV2": self.forkchoice_updated,
            "engine_getPayloadV3": lambda p: self.get_payload(p, version=3),
            "engine_getPayloadV4": lambda p: self.get_payload(p, version=4),
            "engine_newPayloadV3": lambda p: self.new_payload(p, version=3),
            "engine_newPayloadV4": lambda p: self.new_payload(p, version=4),
            "engine_getClientVersionV1": lambda p: [
                {"code": "PX", "name": "parex", "version": __version__, "commit": "0x00000000"}
            ],
            "txpoolExt_getTxs": self.txpool_get_txs,
        }

    # -- dispatch ---------------------------------------------------------------------------

    def handle_one(self, request: Any) -> dict[str, Any] | None:
        if not isinstance(request, dict) or not isinstance(request.get("method"), str):
            return self.rpc.handle_one(request)
        handler = self.methods.get(request["method"])
        if handler is None:
            # eth_* on the engine port too: op-node reads blocks through it.
            return self.rpc.handle_one(request)
        request_id = request.get("id")
        params = request.get("params") or []
        if not isinstance(params, list):
            return _error(request_id, -32602, "invalid params: expected an array")
        try:
            return {"jsonrpc": "2.0", "id": request_id, "result": handler(params)}
        except EngineError as e:
            return _error(request_id, e.code, e.message)
        except RpcError as e:
            return {"jsonrpc": "2.0", "id": request_id, "error": e.to_json()}
        except Exception as e:  # a bug; keep serving
            return _error(request_id, -32603, f"internal error: {type(e).__name__}: {e}")

    # -- methods ----------------------------------------------------------------------------

    def forkchoice_updated(self, params: list[Any]) -> dict[str, Any]:
        if not params or not isinstance(params[0], dict):
            raise RpcError(-32602, "invalid argument 0: expected a forkchoice state object")
        state = params[0]
        head_hash = parse_data(state.get("headBlockHash"), 0, "headBlockHash", 32)
        attributes = params[1] if len(params) > 1 else None
        head = self.chain.head
        if head_hash != head.hash:
            known = self.chain.block_by_hash(head_hash)
            if known is None:
                return {"payloadStatus": _status("SYNCING", None), "payloadId": None}
            raise EngineError(
                INVALID_FORKCHOICE_STATE,
                f"head 0x{head_hash.hex()} (block {known.number}) is not the chain head "
                f"0x{head.hash.hex()} (block {head.number}); parex does not reorg",
            )
        payload_id = None
        if attributes is not None:
            payload_id = self._build(head, attributes)
        return {"payloadStatus": _status("VALID", head.hash), "payloadId": payload_id}

    def _build(self, head: BlockRecord, attributes: Any) -> str:
        if not isinstance(attributes, dict):
            raise RpcError(-32602, "invalid argument 1: expected payload attributes")
        try:
            timestamp = parse_qty(attributes.get("timestamp"), 1, "timestamp", 64)
            prev_randao = parse_data(attributes.get("prevRandao"), 1, "prevRandao", 32)
            fee_recipient = parse_data(attributes.get("suggestedFeeRecipient"), 1, "suggestedFeeRecipient", 20)
            beacon_root = parse_data(
                attributes.get("parentBeaconBlockRoot", "0x" + "00" * 32), 1, "parentBeaconBlockRoot", 32
            )
            withdrawals = parse_withdrawals(attributes.get("withdrawals") or [], 1)
            forced = [parse_data(t, 1, "transactions") for t in attributes.get("transactions") or []]
            gas_limit = bounded_gas_limit(
                head.gas_limit,
                parse_qty(attributes["gasLimit"], 1, "gasLimit", 64)
                if attributes.get("gasLimit") is not None
                else self.chain.gas_limit,
            )
        except RpcError as e:
            raise EngineError(INVALID_PAYLOAD_ATTRIBUTES, e.message) from None
        if timestamp <= head.timestamp:
            raise EngineError(
                INVALID_PAYLOAD_ATTRIBUTES,
                f"timestamp {timestamp} is not after the head's {head.timestamp}",
            )

        block_attributes = BlockAttributes(
            timestamp=timestamp,
            beneficiary=fee_recipient,
            gas_limit=gas_limit,
            prev_randao=prev_randao,
            parent_beacon_block_root=beacon_root,
            withdrawals=withdrawals,
        )

        def prepare(txs: list[bytes], drop_invalid: bool) -> Prepared:
            return self.chain.prepare_block(txs, block_attributes, drop_invalid=drop_invalid)

        try:
            forced_part = prepare(forced, False)
        except ParexError as e:
            raise EngineError(INVALID_PAYLOAD_ATTRIBUTES, f"invalid payload attributes: {e}") from None
        txs = list(forced)
        if not attributes.get("noTxPool"):
            pool = self.mempool.select(
                self._nonce_after(forced_part),
                forced_part.block.base_fee,
                gas_limit - forced_part.block.gas_used,
                20_000,
                blob_base_fee=blob_base_fee(forced_part.block.excess_blob_gas),
                max_blobs=max(BLOB_PARAMS.max - forced_part.block.blob_gas_used // GAS_PER_BLOB, 0),
            )
            txs += [t.raw for t in pool if t.raw not in set(forced)]
            sidecars = {t.hash: t.sidecar for t in pool if t.sidecar is not None}
        else:
            sidecars = {}
        prepared = forced_part if len(txs) == len(forced) else prepare(txs, True)
        payload_id = _core.keccak256(prepared.block.hash + timestamp.to_bytes(8, "big"))[:8]
        with self._lock:
            self._payloads[payload_id] = prepared
            self._sidecars[payload_id] = sidecars
            while len(self._payloads) > PAYLOAD_CACHE:
                evicted, _ = self._payloads.popitem(last=False)
                self._sidecars.pop(evicted, None)
        return "0x" + payload_id.hex()

    def _nonce_after(self, prepared: Prepared) -> Callable[[bytes], int]:
        with self.chain.lock:
            post = self.chain.state.copy()
        post.apply(prepared.result)

        def nonce(sender: bytes) -> int:
            account = post.get_account(sender)
            return 0 if account is None else account[1]

        return nonce

    def get_payload(self, params: list[Any], *, version: int) -> dict[str, Any]:
        payload_id = parse_data(params[0] if params else None, 0, "payloadId", 8)
        with self._lock:
            prepared = self._payloads.get(payload_id)
            sidecars = self._sidecars.get(payload_id, {})
        if prepared is None:
            raise EngineError(UNKNOWN_PAYLOAD, "Unknown payload")
        block = prepared.block
        value = sum(
            (r.effective_gas_price - block.base_fee) * r.gas_used for r in block.receipts
        )
        out: dict[str, Any] = {
            "executionPayload": payload_json(block),
            "blockValue": hex(value),
            "blobsBundle": blobs_bundle(block, sidecars),
            "shouldOverrideBuilder": False,
        }
        if version >= 4:
            out["executionRequests"] = ["0x" + r.hex() for r in block.requests]
        return out

    def new_payload(self, params: list[Any], *, version: int) -> dict[str, Any]:
        if not params or not isinstance(params[0], dict):
            raise RpcError(-32602, "invalid argument 0: expected an execution payload")
        payload = params[0]
        head = self.chain.head
        try:
            block_hash = parse_data(payload.get("blockHash"), 0, "blockHash", 32)
            beacon_root = parse_data(params[2] if len(params) > 2 else None, 2, "parentBeaconBlockRoot", 32)
            fields = {
                "parent_hash": parse_data(payload.get("parentHash"), 0, "parentHash", 32),
                "beneficiary": parse_data(payload.get("feeRecipient"), 0, "feeRecipient", 20),
                "state_root": parse_data(payload.get("stateRoot"), 0, "stateRoot", 32),
                "receipts_root": parse_data(payload.get("receiptsRoot"), 0, "receiptsRoot", 32),
                "logs_bloom": parse_data(payload.get("logsBloom"), 0, "logsBloom", 256),
                "mix_hash": parse_data(payload.get("prevRandao"), 0, "prevRandao", 32),
                "number": parse_qty(payload.get("blockNumber"), 0, "blockNumber", 64),
                "gas_limit": parse_qty(payload.get("gasLimit"), 0, "gasLimit", 64),
                "gas_used": parse_qty(payload.get("gasUsed"), 0, "gasUsed", 64),
                "timestamp": parse_qty(payload.get("timestamp"), 0, "timestamp", 64),
                "extra_data": parse_data(payload.get("extraData", "0x"), 0, "extraData"),
                "base_fee_per_gas": parse_qty(payload.get("baseFeePerGas"), 0, "baseFeePerGas", 64),
                "blob_gas_used": parse_qty(payload.get("blobGasUsed"), 0, "blobGasUsed", 64),
                "excess_blob_gas": parse_qty(payload.get("excessBlobGas"), 0, "excessBlobGas", 64),
            }
            txs_doc = payload.get("transactions")
            if not isinstance(txs_doc, list):
                raise RpcError(-32602, "invalid argument 0: transactions must be an array")
            txs = [parse_data(t, 0, "transactions") for t in txs_doc]
            if not isinstance(payload.get("withdrawals"), list):
                raise RpcError(-32602, "invalid argument 0: withdrawals must be an array (V3 payloads have them)")
            withdrawals = parse_withdrawals(payload["withdrawals"], 0)
            # The node runs Prague rules from genesis: a V3 payload (op-node before Isthmus)
            # is taken as a block without execution requests.
            requests: list[bytes] = []
            if version >= 4:
                if len(params) < 4 or not isinstance(params[3], list):
                    raise RpcError(-32602, "invalid argument 3: expected executionRequests, an array")
                requests = [parse_data(r, 3, "executionRequests") for r in params[3]]
                if any(len(r) <= 1 for r in requests):
                    raise RpcError(-32602, "invalid argument 3: an execution request is a type byte and data")
                if [r[0] for r in requests] != sorted({r[0] for r in requests}):
                    raise RpcError(-32602, "invalid argument 3: execution requests must be in strictly ascending type order")
            expected_doc = params[1] if len(params) > 1 else None
            if not isinstance(expected_doc, list):
                raise RpcError(-32602, "invalid argument 1: expected expectedBlobVersionedHashes, an array")
            expected_hashes = [parse_data(h, 1, "expectedBlobVersionedHashes", 32) for h in expected_doc]
            rlp = _core.payload_block(
                fields, txs, withdrawals=[w.as_tuple() for w in withdrawals],
                parent_beacon_block_root=beacon_root, requests=requests,
            )
        except RpcError as e:
            return _status("INVALID", None, e.message)
        except ParexError as e:
            return _status("INVALID", None, f"malformed payload: {e}")
        computed_hash = _core.Header.of_block(rlp).hash
        if computed_hash != block_hash:
            return _status(
                "INVALID",
                None,
                f"blockhash mismatch: computed 0x{computed_hash.hex()}, payload 0x{block_hash.hex()}",
            )
        carried = _blob_versioned_hashes(txs)
        if carried is not None and carried != expected_hashes:
            return _status(
                "INVALID",
                None,
                f"blob versioned hashes: the transactions carry {len(carried)}, "
                f"expectedBlobVersionedHashes lists {len(expected_hashes)}, and they differ",
            )
        if self.chain.block_by_hash(block_hash) is not None:
            return _status("VALID", block_hash)
        with self._lock:
            built = next((p for p in self._payloads.values() if p.block.hash == block_hash), None)
        # A payload this node built has the same hash, hence the same header and body (the
        # hash commits to the transactions, withdrawals and requests): it was built under
        # the rules already.
        if built is None or built.block.parent_hash != head.hash:
            parent_hash = fields["parent_hash"]
            assert isinstance(parent_hash, bytes)
            parent = self.chain.block_by_hash(parent_hash)
            if parent is None:
                # The Engine API allows SYNCING here, for a node that can fetch the parent;
                # parex has no sync to fetch it with, so the payload can never be judged: say so.
                return _status(
                    "INVALID",
                    None,
                    f"unknown parent 0x{parent_hash.hex()}: parex keeps one chain and cannot sync it",
                )
            if parent.hash != head.hash:
                return _status(
                    "INVALID", head.hash, f"parent block {parent.number} is not the head; parex does not reorg"
                )
            try:
                built = self.chain.import_block(rlp, txs, withdrawals)
            except _core.InvalidBlock as e:
                return _status("INVALID", head.hash, f"{e.exception}: {e.reason}")
            except ChainError as e:
                return _status("INVALID", head.hash, str(e))
        try:
            self.chain.commit_prepared(built)
        except ChainError as e:
            return _status("INVALID", self.chain.head.hash, str(e))
        self.mempool.remove(list(built.block.tx_hashes))
        return _status("VALID", block_hash)

    def txpool_get_txs(self, params: list[Any]) -> list[str]:
        """Evolve's pull: the pool's executable transactions in block order (not removed)."""

        def nonce(sender: bytes) -> int:
            account = self.chain.state.get_account(sender)
            return 0 if account is None else account[1]

        with self.chain.lock:
            head = self.chain.head
            chosen = self.mempool.select(
                nonce, next_base_fee(head), self.chain.gas_limit, 20_000, blob_base_fee=next_blob_base_fee(head)
            )
        return ["0x" + t.raw.hex() for t in chosen]


def blobs_bundle(block: BlockRecord, sidecars: dict[bytes, BlobSidecar]) -> dict[str, list[str]]:
    """
    engine_getPayloadV3/V4's ``blobsBundle``: the commitments, proofs and blobs of the
    payload's blob transactions, in block order (one entry per versioned hash). A blob
    transaction forced in by the payload attributes comes without a sidecar; it has none here.
    """
    bundle: dict[str, list[str]] = {"commitments": [], "proofs": [], "blobs": []}
    for tx_hash in block.tx_hashes:
        sidecar = sidecars.get(tx_hash)
        if sidecar is None:
            continue
        bundle["commitments"] += ["0x" + c.hex() for c in sidecar.commitments]
        bundle["proofs"] += ["0x" + p.hex() for p in sidecar.proofs]
        bundle["blobs"] += ["0x" + b.hex() for b in sidecar.blobs]
    return bundle


GAS_LIMIT_BOUND_DIVISOR = 1024


def _blob_versioned_hashes(txs: list[bytes]) -> list[bytes] | None:
    """The blob versioned hashes of ``txs`` in order; ``None`` when one does not decode (the
    import then rejects the block and names the transaction)."""
    try:
        decoded = [_core.decode_transaction(t, recover=False) for t in txs]
    except ParexError:
        return None
    return [h for info in decoded for h in info["blob_versioned_hashes"]]


def bounded_gas_limit(parent: int, desired: int) -> int:
    """
    The gas limit of the block after one with ``parent``'s, as close to ``desired`` as the
    header rule allows (it moves by less than ``parent // 1024`` a block), as geth's
    ``CalcGasLimit`` steps a miner's target: a requested ``gasLimit`` is reached over blocks.
    """
    step = max(parent // GAS_LIMIT_BOUND_DIVISOR - 1, 0)
    if desired > parent:
        return min(desired, parent + step)
    return max(desired, parent - step, 5000)


def parse_withdrawals(doc: Any, index: int) -> tuple[Withdrawal, ...]:
    """EIP-4895 withdrawals of a payload or payload attributes (JSON objects)."""
    if not isinstance(doc, list):
        raise RpcError(-32602, f"invalid argument {index}: withdrawals must be an array")
    out = []
    for i, w in enumerate(doc):
        if not isinstance(w, dict):
            raise RpcError(-32602, f"invalid argument {index}: withdrawals[{i}] must be an object")
        out.append(
            Withdrawal(
                index=parse_qty(w.get("index"), index, f"withdrawals[{i}].index", 64),
                validator_index=parse_qty(w.get("validatorIndex"), index, f"withdrawals[{i}].validatorIndex", 64),
                address=parse_data(w.get("address"), index, f"withdrawals[{i}].address", 20),
                amount=parse_qty(w.get("amount"), index, f"withdrawals[{i}].amount", 64),
            )
        )
    return tuple(out)


def payload_json(block: BlockRecord) -> dict[str, Any]:
    """An ExecutionPayloadV3 of a block."""
    return {
        "parentHash": "0x" + block.parent_hash.hex(),
        "feeRecipient": "0x" + block.beneficiary.hex(),
        "stateRoot": "0x" + block.state_root.hex(),
        "receiptsRoot": "0x" + block.receipts_root.hex(),
        "logsBloom": "0x" + block.logs_bloom.hex(),
        "prevRandao": "0x" + block.mix_hash.hex(),
        "blockNumber": hex(block.number),
        "gasLimit": hex(block.gas_limit),
        "gasUsed": hex(block.gas_used),
        "timestamp": hex(block.timestamp),
        "extraData": "0x" + block.extra_data.hex(),
        "baseFeePerGas": hex(block.base_fee),
        "blockHash": "0x" + block.hash.hex(),
        "transactions": ["0x" + t.hex() for t in block.transactions],
        "withdrawals": [withdrawal_json(w) for w in block.withdrawals],
        "blobGasUsed": hex(block.blob_gas_used),
        "excessBlobGas": hex(block.excess_blob_gas),
    }


def engine_app(engine: EngineApi, secret_path: Path) -> Starlette:
    """The authrpc HTTP endpoint: JWT first, then JSON-RPC (engine_* and eth_*)."""
    secret = load_jwt_secret(secret_path)

    async def endpoint(request: Request) -> Response:
        try:
            check_token(request.headers.get("authorization"), secret)
        except JwtError as e:
            return JSONResponse(
                {"jsonrpc": "2.0", "id": None, "error": {"code": -32000, "message": str(e)}}, status_code=401
            )
        body = await request.body()
        try:
            payload = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
            return JSONResponse(_error(None, -32700, f"parse error: {e}"))
        if isinstance(payload, list):
            replies = await run_in_threadpool(lambda: [engine.handle_one(p) for p in payload])
            return JSONResponse([r for r in replies if r is not None])
        reply = await run_in_threadpool(engine.handle_one, payload)
        return JSONResponse(reply) if reply is not None else Response(status_code=204)

    return Starlette(routes=[Route("/", endpoint, methods=["POST"])])


def _error(request_id: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}
