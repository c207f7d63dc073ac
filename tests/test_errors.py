"""Invalid blocks raise the right exception, naming the right transaction."""

from __future__ import annotations

from collections.abc import Callable

import _rlp
import pytest
from conftest import universe

import parex
from parex import (
    DecodeError,
    Engine,
    InvalidTransaction,
    ParexError,
    SignatureError,
    StateError,
    TransactionError,
)
from parex.workloads import Account, Call, derive_accounts, sign_calls

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141

Runner = Callable[[parex.BlockEnv, list[bytes], parex.State], parex.BlockResult]

RUNNERS: dict[str, Runner] = {
    "sequential": lambda env, txs, state: Engine().execute_sequential(env, txs, state),
    "parallel-1": lambda env, txs, state: Engine(threads=1, sequential_rule=False).execute(env, txs, state),
    "parallel-4": lambda env, txs, state: Engine(threads=4, sequential_rule=False).execute(env, txs, state),
}


def users() -> list[Account]:
    return [Account(a.secret, a.address, a.nonce) for a in universe().users]


def valid(count: int = 2) -> list[bytes]:
    """``count`` valid transfers from the last users (so they never share a sender)."""
    u = universe()
    senders = users()[-count:]
    return sign_calls([Call(s, u.recipients[1], value=1, gas_limit=21_000) for s in senders])


def transfer_from(sender: Account, chain_id: int = 1, gas_limit: int = 21_000) -> bytes:
    call = Call(sender, universe().recipients[2], value=1, gas_limit=gas_limit)
    return sign_calls([call], chain_id=chain_id)[0]


def with_signature(envelope: bytes, r: int | None = None, s: int | None = None) -> bytes:
    """The EIP-1559 envelope with its signature's r and/or s replaced."""
    assert envelope[0] == 2
    fields = _rlp.decode(envelope[1:])
    assert isinstance(fields, list) and len(fields) == 12
    if r is not None:
        fields[10] = _rlp.from_int(r)
    if s is not None:
        fields[11] = _rlp.from_int(s)
    return b"\x02" + _rlp.encode(fields)


def signature(envelope: bytes) -> tuple[int, int]:
    fields = _rlp.decode(envelope[1:])
    assert isinstance(fields, list)
    return _rlp.to_int(fields[10]), _rlp.to_int(fields[11])


def bad_blocks() -> dict[str, tuple[type[TransactionError], Callable[[], list[bytes]]]]:
    def high_s() -> list[bytes]:
        tx = transfer_from(users()[0])
        _, s = signature(tx)
        # The same signature with s mirrored: valid for secp256k1, invalid since Homestead.
        return valid() + [with_signature(tx, s=SECP256K1_N - s)]

    def zero_r() -> list[bytes]:
        return valid() + [with_signature(transfer_from(users()[0]), r=0)]

    def s_above_order() -> list[bytes]:
        return valid() + [with_signature(transfer_from(users()[0]), s=SECP256K1_N + 1)]

    def unfunded() -> list[bytes]:
        stranger = derive_accounts(99, "stranger", 1)[0]
        return valid() + [transfer_from(stranger)]

    def nonce_gap() -> list[bytes]:
        sender = users()[0]
        sender.nonce += 1
        return valid() + [transfer_from(sender)]

    def nonce_reused() -> list[bytes]:
        sender = users()[0]
        first = transfer_from(sender)
        sender.nonce -= 1
        return valid() + [first, transfer_from(sender)]

    return {
        "garbage": (DecodeError, lambda: valid() + [b"\x02\xde\xad\xbe\xef"]),
        "empty": (DecodeError, lambda: valid() + [b""]),
        "unknown type": (DecodeError, lambda: valid() + [b"\x7f" + valid(1)[0][1:]]),
        "truncated": (DecodeError, lambda: valid() + [valid(1)[0][:-5]]),
        "high s": (SignatureError, high_s),
        "zero r": (SignatureError, zero_r),
        "s above order": (SignatureError, s_above_order),
        "wrong chain id": (
            InvalidTransaction,
            lambda: valid() + [transfer_from(users()[0], chain_id=5)],
        ),
        "nonce gap": (InvalidTransaction, nonce_gap),
        "nonce reused": (InvalidTransaction, nonce_reused),
        "insufficient funds": (InvalidTransaction, unfunded),
        "gas above block limit": (
            InvalidTransaction,
            lambda: valid() + [transfer_from(users()[0], gas_limit=30_000_001)],
        ),
    }


CASES = bad_blocks()


@pytest.mark.parametrize("runner", sorted(RUNNERS))
@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_transaction_is_named(case: str, runner: str) -> None:
    expected, make = CASES[case]
    txs = make()
    index = len(txs) - 1
    env = universe().env.replace(gas_limit=30_000_000)
    with pytest.raises(expected) as info:
        RUNNERS[runner](env, txs, universe().state)
    err = info.value
    assert type(err) is expected
    assert isinstance(err, TransactionError) and isinstance(err, ParexError)
    assert err.index == index
    assert isinstance(err.reason, str) and err.reason
    assert f"transaction {index}" in str(err)


def test_valid_prefix_is_really_valid() -> None:
    """The bad blocks above differ from a valid block only in their last transaction."""
    env = universe().env.replace(gas_limit=30_000_000)
    result = Engine().execute_sequential(env, valid() + [transfer_from(users()[0])], universe().state)
    assert [r.success for r in result.receipts] == [True, True, True]


def test_hierarchy() -> None:
    for cls in (DecodeError, SignatureError, InvalidTransaction):
        assert issubclass(cls, TransactionError)
    assert issubclass(TransactionError, ParexError)
    assert issubclass(StateError, ParexError)
    assert issubclass(ParexError, Exception)
    assert TransactionError("x").index is None
    assert DecodeError.__module__ == "parex._core"
