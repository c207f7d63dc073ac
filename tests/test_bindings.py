"""The bindings: conversions, checks and the State API."""

from __future__ import annotations

import copy

import _rlp
import pytest
from hypothesis import given
from hypothesis import strategies as st

import parex
from parex import _core
from parex import BlockEnv, Engine, Fork, State, address_of, keccak256, sign_transactions, workloads

KECCAK_EMPTY = bytes.fromhex("c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470")

# EIP-155's worked example: key 0x46..46 signs a legacy transfer on chain 1.
EIP155_KEY = bytes([0x46] * 32)
EIP155_SENDER = bytes.fromhex("9d8A62f656a8d1615C1294fd71e9CFb3E4855A4F")
EIP155_TX = bytes.fromhex(
    "f86c098504a817c800825208943535353535353535353535353535353535353535880de0b6b3a7640000"
    "8025a028ef61340bd939bc2195fe537567866003e1a15d3c71ff63e1590620aa636276a067cbe9d8997f"
    "761aecb703304b3800ccf555c9f3dc64214b297fb1966a3b6d83"
)
ADDRESS = bytes.fromhex("00" * 19 + "aa")


def test_keccak_and_address_of() -> None:
    assert keccak256(b"") == KECCAK_EMPTY
    assert keccak256(bytearray(b"")) == KECCAK_EMPTY
    assert address_of(EIP155_KEY) == EIP155_SENDER


def test_external_legacy_transaction_executes() -> None:
    """A transaction signed elsewhere (EIP-155's example) decodes, recovers and runs."""
    state = State()
    state.set_account(EIP155_SENDER, 10**19, nonce=9)
    env = BlockEnv(base_fee=10**9)
    result = Engine(threads=2, sequential_rule=False).execute(env, [EIP155_TX], state)
    assert result.senders == [EIP155_SENDER]
    assert result.tx_hashes == [keccak256(EIP155_TX)]
    (receipt,) = result.receipts
    assert (receipt.tx_type, receipt.success, receipt.gas_used) == (0, True, 21_000)
    state.apply(result)
    assert state.get_account(bytes([0x35] * 20)) == (10**18, 0, KECCAK_EMPTY)
    balance, nonce, _ = state.get_account(EIP155_SENDER) or (0, 0, b"")
    assert nonce == 10 and balance == 10**19 - 10**18 - 21_000 * 20 * 10**9


def test_signed_envelope_round_trips() -> None:
    to = bytes([0x35] * 20)
    (tx,) = sign_transactions(5, [EIP155_KEY], [(3, to, 7, b"\x01\x02", 50_000, 9, 2)])
    assert tx[0] == 2
    fields = _rlp.decode(tx[1:])
    assert isinstance(fields, list)
    chain_id, nonce, tip, fee, gas, dest, value, data = fields[:8]
    assert [_rlp.to_int(x) for x in (chain_id, nonce, tip, fee, gas, value)] == [5, 3, 2, 9, 50_000, 7]
    assert dest == to and data == b"\x01\x02"
    creation = sign_transactions(1, [EIP155_KEY], [(0, None, 0, b"\x00", 60_000, 1, 1)])[0]
    assert _rlp.decode(creation[1:])[5] == b""  # type: ignore[index]


@given(st.integers(0, 2**256 - 1), st.integers(0, 2**64 - 1), st.binary(max_size=64))
def test_account_round_trip(balance: int, nonce: int, code: bytes) -> None:
    state = State()
    state.set_account(ADDRESS, balance, nonce, code)
    code_hash = keccak256(code) if code else KECCAK_EMPTY
    assert state.get_account(ADDRESS) == (balance, nonce, code_hash)
    assert state.get_account("0x" + ADDRESS.hex()) == (balance, nonce, code_hash)
    assert state.get_code(ADDRESS) == code
    assert len(state) == 1


@given(st.integers(0, 2**256 - 1), st.integers(0, 2**256 - 1))
def test_storage_round_trip(slot: int, value: int) -> None:
    state = State()
    state.set_storage(ADDRESS, slot, value)
    assert state.get_storage(ADDRESS, slot) == value
    assert state.get_storage(ADDRESS, slot ^ 1) == 0


def test_state_basics() -> None:
    state = State()
    assert len(state) == 0 and state.get_account(ADDRESS) is None
    assert state.get_code(ADDRESS) == b""
    state.set_account("0x" + "AB" * 20, 5)
    other = state.copy()
    other.set_account(ADDRESS, 1)
    assert len(state) == 1 and len(other) == 2
    assert state != other and state == copy.deepcopy(state)
    assert "accounts=1" in repr(state)


def test_copy_on_write_isolates_running_block() -> None:
    """Mutating a State after passing it to the engine never changes an executed result."""
    alice = keccak256(b"alice")
    state = State()
    state.set_account(address_of(alice), 10**18)
    txs = sign_transactions(1, [alice], [(0, ADDRESS, 1, b"", 21_000, 10**9, 10**9)])
    before = Engine(threads=2, sequential_rule=False).execute(BlockEnv(), txs, state)
    state.set_account(address_of(alice), 0)
    with pytest.raises(parex.InvalidTransaction):
        Engine(threads=2, sequential_rule=False).execute(BlockEnv(), txs, state)
    assert before.receipts[0].success


def test_result_fields() -> None:
    alice = keccak256(b"alice")
    state = State()
    state.set_account(address_of(alice), 10**18)
    txs = sign_transactions(1, [alice], [(0, ADDRESS, 1, b"", 21_000, 10**9, 10**9)])
    env = BlockEnv(beneficiary=bytes([0xCB] * 20), base_fee=10**8)
    result = Engine(threads=2).execute_sequential(env, txs, state, trace=True)
    assert len(result) == 1 and result.gas_used == 21_000
    assert result.tx_nanos is not None and len(result.tx_nanos) == 1
    assert result.ideal_speedup is not None and result.ideal_speedup >= 1.0
    assert set(result.stats) >= {
        "executions", "reexecutions", "validations", "validation_aborts",
        "blocked_reads", "hinted_waits", "contended_waits", "ahead_runs", "ahead_failures",
        "fallback_reason", "threads",
    }
    assert result.elapsed_ns > 0
    changes = {c.address: c for c in result.changes}
    assert changes[ADDRESS].balance == 1 and not changes[ADDRESS].deleted
    assert changes[address_of(alice)].nonce == 1
    fee_cap = 10**9
    assert changes[bytes([0xCB] * 20)].balance == 21_000 * min(10**9, fee_cap - 10**8)
    untraced = Engine(threads=2, sequential_rule=False).execute(env, txs, state)
    assert untraced.tx_nanos is None and untraced.ideal_speedup is None


def test_trace_runs_keep_the_first_run_and_check_their_count() -> None:
    """Several traced runs give the first run's outcome and one time per transaction; a run
    count below one is refused, naming the argument."""
    w = workloads.erc20(txs=40, conflict=50, seed=3)
    engine = Engine(threads=2, sequential_rule=False)
    once = engine.execute_sequential(w.block_env, w.transactions, w.pre_state, trace=True)
    for run in (engine.execute_sequential, engine.execute):
        many = run(w.block_env, w.transactions, w.pre_state, trace=True, trace_runs=4)
        assert many.same_outcome(once) and many.digest() == once.digest()
        assert many.tx_nanos is not None and len(many.tx_nanos) == 40
        assert all(n > 0 for n in many.tx_nanos)
        assert many.ideal_speedup is not None and many.ideal_speedup >= 1.0
    for bad in (0, -1, True, 2.0):
        with pytest.raises(ValueError, match="trace_runs"):
            engine.execute(w.block_env, w.transactions, w.pre_state, trace=True, trace_runs=bad)  # type: ignore[arg-type]


def test_execute_copies_times_copies_and_checks_its_block() -> None:
    """Copies of a valid block run at once and are timed; a block that fails raises as
    ``execute`` does, naming the transaction; a bad copy count names the argument."""
    w = workloads.erc20(txs=40, conflict=50, seed=3)
    engine = Engine(threads=2)
    block = engine.prepare(w.block_env, w.transactions)
    for copies in (None, 1, 3):
        alone, together = engine.execute_copies(block, w.pre_state, copies=copies)
        assert alone > 0 and together > 0
    with pytest.raises(parex.InvalidTransaction) as raised:
        engine.execute_copies(block, State(), copies=2)
    assert raised.value.index == 0
    for bad in (0, -1, 2.0, "2", 10**6):
        with pytest.raises(ValueError, match="copies"):
            _core.execute_copies(block, State(), copies=bad)  # type: ignore[arg-type]


def test_a_prepared_block_executes_as_its_transactions_do() -> None:
    """Recovered once, a block runs any number of times, on either executor and on any
    state, with the result ``execute`` gives; only the recovery time is left out."""
    w = workloads.amm(txs=60, conflict=50, seed=5)
    engine = Engine(threads=2, sequential_rule=False)
    block = engine.prepare(w.block_env, w.transactions)
    direct = engine.execute(w.block_env, w.transactions, w.pre_state)
    assert len(block) == 60 and block.recovery_ns > 0
    assert block.senders == direct.senders and block.tx_hashes == direct.tx_hashes
    fork = _core.parse_fork(w.block_env.fork)
    assert repr(block) == f"PreparedBlock(number={w.block_env.number}, transactions=60, fork={fork})"
    for sequential in (False, True, False):
        result = engine.execute_prepared(block, w.pre_state, sequential=sequential)
        assert result.same_outcome(direct) and result.digest() == direct.digest()
        assert result.recovery_ns == 0 and result.execution_ns > 0
        assert result.stats["threads"] == (1 if sequential else 2)
    traced = engine.execute_prepared(block, w.pre_state, trace=True, trace_runs=2)
    assert traced.ideal_speedup is not None and traced.tx_nanos is not None
    # Another state: the same prepared block, checked against it.
    with pytest.raises(parex.InvalidTransaction) as raised:
        engine.execute_prepared(block, State())
    assert raised.value.index == 0
    with pytest.raises(ValueError, match="trace_runs"):
        _core.execute_prepared(block, w.pre_state, trace=True, trace_runs=0)
    with pytest.raises(TypeError):
        _core.execute_prepared(w.transactions, w.pre_state)  # type: ignore[arg-type]


def test_prepare_names_what_does_not_decode_or_recover() -> None:
    w = workloads.transfer(txs=4, conflict=0, seed=1)
    txs = list(w.transactions)
    with pytest.raises(parex.DecodeError) as decoded:
        _core.prepare(w.block_env, [txs[0], b"\x02\xc0", txs[2]])
    assert decoded.value.index == 1
    for bad in (0, -1, "2"):
        with pytest.raises(ValueError, match="threads"):
            _core.prepare(w.block_env, txs, threads=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="env.gas_limit"):
        _core.prepare(w.block_env, txs, gas_limit=-1)


def test_env_as_mapping_object_and_kwargs() -> None:
    alice = keccak256(b"alice")
    state = State()
    state.set_account(address_of(alice), 10**18)
    txs = sign_transactions(7, [alice], [(0, ADDRESS, 1, b"", 21_000, 10**9, 10**9)])
    a = _core.execute({"chain_id": 7, "fork": "Cancun"}, txs, state, threads=2)
    b = _core.execute(BlockEnv(chain_id=7, fork="cancun"), txs, state)
    c = _core.execute(None, txs, state, chain_id=7, fork=Fork.CANCUN)
    assert a.same_outcome(b) and b.same_outcome(c)
    with pytest.raises(parex.InvalidTransaction):
        _core.execute({"chain_id": 7}, txs, state, chain_id=1)


def test_forks_match_engine() -> None:
    assert [f.value for f in Fork] == [name.lower() for name in _core.FORKS]


BAD_ADDRESSES = ["0x123", "0x" + "zz" * 20, "ab" * 20, b"\x00" * 19, 5, None]


@pytest.mark.parametrize("address", BAD_ADDRESSES)
def test_bad_address(address: object) -> None:
    with pytest.raises(ValueError, match="address"):
        State().set_account(address, 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="address"):
        State().get_account(address)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda s: s.set_account(ADDRESS, -1), "balance"),
        (lambda s: s.set_account(ADDRESS, 2**256), "balance"),
        (lambda s: s.set_account(ADDRESS, 1.5), "balance"),
        (lambda s: s.set_account(ADDRESS, True), "balance"),
        (lambda s: s.set_account(ADDRESS, 1, -1), "nonce"),
        (lambda s: s.set_account(ADDRESS, 1, 2**64), "nonce"),
        (lambda s: s.set_account(ADDRESS, 1, 0, "code"), "code"),
        (lambda s: s.set_storage(ADDRESS, -1, 0), "slot"),
        (lambda s: s.set_storage(ADDRESS, 0, 2**256), "value"),
        (lambda s: s.get_storage(ADDRESS, 2**300), "slot"),
    ],
)
def test_bad_numbers(call: object, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        call(State())  # type: ignore[operator]


def test_transaction_types() -> None:
    alice = keccak256(b"alice")
    state = State()
    state.set_account(address_of(alice), 10**18)
    requests = [(n, ADDRESS, 1, b"", 21_000, 10**9, 10**9, t) for n, t in enumerate([0, 1, 2])]
    txs = sign_transactions(1, [alice] * 3, requests)
    assert [tx[0] for tx in txs[1:]] == [1, 2] and txs[0][0] >= 0xC0
    result = Engine(threads=2, sequential_rule=False).execute(BlockEnv(base_fee=10**8), txs, state)
    assert [r.tx_type for r in result.receipts] == [0, 1, 2]
    assert all(r.success for r in result.receipts)
    with pytest.raises(ValueError, match="tx_type"):
        sign_transactions(1, [alice], [(0, ADDRESS, 1, b"", 21_000, 1, 1, 3)])


def test_bad_execute_arguments() -> None:
    state = State()
    with pytest.raises(ValueError, match="threads"):
        Engine(threads=0)
    with pytest.raises(ValueError, match="threads"):
        Engine(threads=-3)
    with pytest.raises(ValueError, match="threads"):
        _core.execute(None, [], state, threads=0)
    with pytest.raises(ValueError, match=r"transactions\[1\]"):
        _core.execute(None, [b"", "not bytes"], state)  # type: ignore[list-item]
    with pytest.raises(ValueError, match="transactions"):
        _core.execute(None, b"\x02", state)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="env.fork"):
        _core.execute({"fork": "Atlantis"}, [], state)
    with pytest.raises(ValueError, match="unknown field"):
        _core.execute({"gaslimit": 1}, [], state)
    with pytest.raises(ValueError, match="env.beneficiary"):
        _core.execute(BlockEnv(beneficiary=b"\x01"), [], state)
    with pytest.raises(ValueError, match="env.gas_limit"):
        _core.execute({"gas_limit": -1}, [], state)
    with pytest.raises(TypeError):
        _core.execute(None, [], "state")  # type: ignore[arg-type]


def test_bad_signing_arguments() -> None:
    request = (0, ADDRESS, 0, b"", 21_000, 1, 1)
    with pytest.raises(ValueError, match="secret"):
        address_of(b"\x01" * 31)
    with pytest.raises(ValueError, match="secret"):
        address_of(b"\x00" * 32)  # zero is not a valid key
    with pytest.raises(ValueError, match="one per request"):
        sign_transactions(1, [EIP155_KEY], [request, request])
    with pytest.raises(ValueError, match=r"requests\[0\]"):
        sign_transactions(1, [EIP155_KEY], [(0, ADDRESS)])  # type: ignore[list-item]
    with pytest.raises(ValueError, match=r"requests\[0\].to"):
        sign_transactions(1, [EIP155_KEY], [(0, b"\x01", 0, b"", 21_000, 1, 1)])
    with pytest.raises(ValueError, match=r"secrets\[0\]"):
        sign_transactions(1, [b"\x00" * 32], [request])


def test_empty_block() -> None:
    result = Engine(threads=3, sequential_rule=False).execute(BlockEnv(), [], State())
    assert result.receipts == [] and result.gas_used == 0 and result.changes == []
    assert result.same_outcome(Engine().execute_sequential(BlockEnv(), [], State()))
