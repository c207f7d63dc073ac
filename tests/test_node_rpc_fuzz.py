"""
Every eth_* method, called in process with random JSON parameters, answers with a result or
a proper JSON-RPC error: never an internal error (a bug), never an exception.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parex.node.chain import Chain
from parex.node.genesis import dev_genesis
from parex.node.mempool import Mempool
from parex.node.rpc import Rpc

_DIR = tempfile.TemporaryDirectory()
_GENESIS = dev_genesis()
_CHAIN = Chain.open(Path(_DIR.name), _GENESIS, threads=1)
_CHAIN.build_block([])
_RPC = Rpc(_CHAIN, Mempool(_CHAIN.chain_id, _CHAIN.gas_limit), _GENESIS.dev_accounts)

hexes = st.sampled_from(["0x", "0x0", "0x1", "0x00", "0xzz", "0x" + "ab" * 20, "0x" + "cd" * 32, "0x" + "f" * 65,
                         "latest", "pending", "earliest", "safe", "0x" + "12" * 1000, "-0x1", "",
                         hex(2**64), hex(2**128), hex(2**256 - 1), hex(2**256)])
scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**300),
                    st.floats(allow_nan=False), st.text(max_size=20), hexes)
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.sampled_from(["from", "to", "gas", "gasPrice", "maxFeePerGas", "value", "data",
                                         "input", "nonce", "accessList", "address", "topics", "fromBlock",
                                         "toBlock", "blockHash", "blockNumber", "storageKeys"]), children,
                        max_size=5),
    ),
    max_leaves=8,
)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(method=st.sampled_from(sorted(_RPC.methods)), params=st.lists(values, max_size=4))
def test_random_params_never_break_a_method(method: str, params: list[Any]) -> None:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    reply = _RPC.handle(body)
    assert reply is not None
    response = json.loads(reply)
    assert ("result" in response) != ("error" in response), response
    if "error" in response:
        assert response["error"]["code"] != -32603, (method, params, response)
        assert isinstance(response["error"]["message"], str) and response["error"]["message"]


ADDRESS = "0x" + "ab" * 20
DEV = "0x" + _GENESIS.dev_accounts[0].address.hex()
call_objects = st.fixed_dictionaries(
    {"to": st.sampled_from([ADDRESS, None])},
    optional={
        "from": st.sampled_from([ADDRESS, DEV]),
        "gas": hexes, "gasPrice": hexes, "maxFeePerGas": hexes, "maxPriorityFeePerGas": hexes,
        "value": hexes, "nonce": hexes, "data": hexes, "input": hexes,
        "accessList": st.lists(st.fixed_dictionaries({"address": hexes, "storageKeys": st.lists(hexes, max_size=2)}),
                               max_size=2),
    },
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(method=st.sampled_from(["eth_call", "eth_estimateGas", "eth_sendTransaction"]), call=call_objects,
       tag=st.sampled_from(["latest", "pending"]))
def test_random_call_objects_never_break_execution(method: str, call: dict[str, Any], tag: str) -> None:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": [call, tag]}).encode()
    response = json.loads(_RPC.handle(body) or b"null")
    if "error" in response:
        assert response["error"]["code"] != -32603, (method, call, response)


_ENGINE = None


def _engine() -> Any:
    global _ENGINE
    if _ENGINE is None:
        from parex.node.engine_api import EngineApi

        _ENGINE = EngineApi(_CHAIN, _RPC.mempool, _RPC)
    return _ENGINE


payload_fields = st.fixed_dictionaries(
    {},
    optional={key: hexes for key in ("parentHash", "feeRecipient", "stateRoot", "receiptsRoot", "logsBloom",
                                     "prevRandao", "blockNumber", "gasLimit", "gasUsed", "timestamp", "extraData",
                                     "baseFeePerGas", "blockHash", "blobGasUsed", "excessBlobGas")}
    | {"transactions": st.lists(hexes, max_size=2), "withdrawals": st.lists(values, max_size=1)},
)
attributes = st.fixed_dictionaries(
    {},
    optional={"timestamp": hexes, "prevRandao": hexes, "suggestedFeeRecipient": hexes, "parentBeaconBlockRoot": hexes,
              "transactions": st.lists(hexes, max_size=2), "noTxPool": st.booleans(), "gasLimit": hexes,
              "withdrawals": st.lists(values, max_size=1)},
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    call=st.one_of(
        st.tuples(st.sampled_from(["engine_newPayloadV3", "engine_newPayloadV4"]),
                  st.tuples(payload_fields, st.lists(hexes, max_size=1), hexes, st.lists(hexes, max_size=1))),
        st.tuples(st.just("engine_forkchoiceUpdatedV3"),
                  st.tuples(st.fixed_dictionaries({"headBlockHash": st.sampled_from(
                      ["0x" + _CHAIN.head.hash.hex(), "0x" + "00" * 32, "0x12"])}), st.one_of(st.none(), attributes))),
        st.tuples(st.sampled_from(["engine_getPayloadV3", "engine_getPayloadV4", "txpoolExt_getTxs"]),
                  st.lists(values, max_size=2).map(tuple)),
    )
)
def test_random_engine_calls_never_break_the_engine_api(call: tuple[str, tuple[Any, ...]]) -> None:
    method, params = call
    response = _engine().handle_one({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)})
    assert response is not None
    assert ("result" in response) != ("error" in response), response
    if "error" in response:
        assert response["error"]["code"] != -32603, (method, params, response)
    elif method.startswith("engine_newPayload"):
        assert response["result"]["status"] in ("VALID", "INVALID", "SYNCING", "ACCEPTED"), response
