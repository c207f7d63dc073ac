"""The workload generators: deterministic, set up through the engine, conflicting as asked."""

from __future__ import annotations

import pytest

from parex import Engine
from parex.contracts import decode_words, encode_call, selector
from parex.engine import available_cpus
from parex.workloads import WORKLOADS, amm, erc20, transfer


def run(workload_name: str, txs: int, conflict: int, seed: int = 1):  # type: ignore[no-untyped-def]
    w = WORKLOADS[workload_name](txs, conflict, seed)
    result = Engine().execute_sequential(w.block_env, w.transactions, w.pre_state, trace=True)
    return w, result


@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_deterministic_and_all_succeed(name: str) -> None:
    w, result = run(name, 40, 25)
    again = WORKLOADS[name](40, 25, 1)
    assert again.transactions == w.transactions
    assert again.pre_state == w.pre_state
    assert WORKLOADS[name](40, 25, 2).transactions != w.transactions
    assert len(w.hot) == 10
    assert all(r.success for r in result.receipts)
    assert all(r.tx_type == 2 for r in result.receipts)
    assert len(set(result.senders)) == 40  # one sender per transaction
    parallel = Engine(threads=4, sequential_rule=False).execute(w.block_env, w.transactions, w.pre_state)
    assert parallel.same_outcome(result) and parallel.digest() == result.digest()


def test_erc20_hot_recipient_receives_every_hot_transfer() -> None:
    w, result = run("erc20", 30, 50)
    token = result.receipts[0].logs[0].address
    hot_to = {
        result.receipts[i].logs[0].topics[2] for i in w.hot
    }
    assert len(hot_to) == 1  # one hot recipient
    (recipient,) = hot_to
    expected = sum(decode_words(result.receipts[i].logs[0].data, "uint256")[0] for i in w.hot)
    slot = int.from_bytes(
        __import__("parex").keccak256(recipient + (3).to_bytes(32, "big")), "big"
    )
    post = w.pre_state.copy()
    post.apply(result)
    assert post.get_storage(token, slot) == expected


def test_amm_hot_swaps_share_one_pair_and_cold_ones_do_not() -> None:
    w, result = run("amm", 60, 50)
    pair_of = [r.logs[-1].address for r in result.receipts]  # the Swap event's emitter
    assert len({pair_of[i] for i in w.hot}) == 1
    cold = [pair_of[i] for i in range(60) if i not in w.hot]
    assert len(set(cold)) == len(cold) == 30
    assert pair_of[min(w.hot)] not in cold


def test_amm_swap_pays_constant_product_output() -> None:
    w, result = run("amm", 4, 0)
    for receipt in result.receipts:
        swap = receipt.logs[-1]
        amount_in, amount_out, zero_for_one = decode_words(swap.data, "uint256", "uint256", "bool")
        reserve = 10**27
        assert amount_out == amount_in * 997 * reserve // (reserve * 1000 + amount_in * 997)


def test_argument_checks() -> None:
    with pytest.raises(ValueError, match="conflict"):
        transfer(10, 101)
    with pytest.raises(ValueError, match="txs"):
        erc20(0, 0)
    with pytest.raises(ValueError, match="conflict"):
        amm(10, -1)


def test_abi_helpers() -> None:
    assert selector("transfer(address,uint256)").hex() == "a9059cbb"
    assert encode_call("sync()") == selector("sync()")
    with pytest.raises(ValueError):
        encode_call("transfer(address,uint256)", b"\x00" * 20)


@pytest.mark.skipif(available_cpus() < 2, reason="a hot chain needs two workers running at once")
def test_amm_hot_chain_runs_ahead_and_changes_nothing() -> None:
    # Half the swaps on one pair: once the pair's reserves are hot, the worker that wrote them
    # runs the next swap on the pair ahead of the execution index (I21). Results must not move.
    w, result = run("amm", 1500, 50)
    engine = Engine(threads=2, sequential_rule=False)
    ahead = 0
    for _ in range(5):
        parallel = engine.execute(w.block_env, w.transactions, w.pre_state)
        assert parallel.same_outcome(result) and parallel.digest() == result.digest()
        ahead += parallel.stats["ahead_runs"]
    assert ahead > 0, "no swap on the hot pair ran ahead"
