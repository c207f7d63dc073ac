"""Typed stubs of the `parex._core` extension module (crates/parex-python)."""

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar, Final, TypedDict, final

__all__ = [
    "address_of",
    "blob_params",
    "execute",
    "execute_copies",
    "execute_prepared",
    "prepare",
    "fork_at",
    "import_block",
    "parse_fork",
    "keccak256",
    "logs_bloom",
    "logs_hash",
    "receipts_root",
    "rpc_transactions",
    "sign_transactions",
    "state_root",
    "transactions_root",
    "account_proof",
    "call",
    "decode_pooled_transaction",
    "decode_transaction",
    "estimate_gas",
    "build_block",
    "genesis_header",
    "payload_block",
    "system_contracts",
    "CallInvalid",
    "CallResult",
    "StateRootTracker",
    "Store",
    "validate_blob_sidecar",
    "DecodeError",
    "InvalidBlock",
    "InvalidTransaction",
    "ParexError",
    "SignatureError",
    "StateError",
    "TransactionError",
    "AccountChange",
    "BlockResult",
    "PreparedBlock",
    "Header",
    "ImportedBlock",
    "Log",
    "Receipt",
    "State",
    "__version__",
    "FORKS",
]

__version__: Final[str]
FORKS: Final[tuple[str, ...]]

# An address: 20 raw bytes, or "0x" followed by 40 hex digits.
_Address = bytes | bytearray | str

# (nonce, to, value, input, gas_limit, max_fee, max_priority_fee[, tx_type])
_Request = tuple[int, _Address | None, int, bytes | bytearray, int, int, int]
_TypedRequest = tuple[int, _Address | None, int, bytes | bytearray, int, int, int, int]

class _Stats(TypedDict):
    executions: int
    reexecutions: int
    validations: int
    validation_aborts: int
    blocked_reads: int
    hinted_waits: int
    contended_waits: int
    ahead_runs: int
    ahead_failures: int
    fallback_reason: str | None
    threads: int
    sequential_rule: str | None

class ParexError(Exception): ...

class TransactionError(ParexError):
    index: int | None
    reason: str

class DecodeError(TransactionError): ...
class SignatureError(TransactionError): ...
class InvalidTransaction(TransactionError): ...
class StateError(ParexError): ...
class CallInvalid(ParexError): ...

class InvalidBlock(ParexError):
    exception: str
    reason: str
    index: int | None

@final
class Log:
    __hash__: ClassVar[None]  # type: ignore[assignment]
    @property
    def address(self) -> bytes: ...
    @property
    def topics(self) -> list[bytes]: ...
    @property
    def data(self) -> bytes: ...
    def __eq__(self, value: object, /) -> bool: ...

@final
class Receipt:
    __hash__: ClassVar[None]  # type: ignore[assignment]
    @property
    def tx_type(self) -> int: ...
    @property
    def success(self) -> bool: ...
    @property
    def gas_used(self) -> int: ...
    @property
    def cumulative_gas_used(self) -> int: ...
    @property
    def logs(self) -> list[Log]: ...
    @property
    def contract_address(self) -> bytes | None: ...
    def __eq__(self, value: object, /) -> bool: ...

@final
class AccountChange:
    __hash__: ClassVar[None]  # type: ignore[assignment]
    @property
    def address(self) -> bytes: ...
    @property
    def deleted(self) -> bool: ...
    @property
    def balance(self) -> int: ...
    @property
    def nonce(self) -> int: ...
    @property
    def code_hash(self) -> bytes: ...
    @property
    def code(self) -> bytes | None: ...
    @property
    def storage_cleared(self) -> bool: ...
    @property
    def storage(self) -> dict[int, int]: ...
    def __eq__(self, value: object, /) -> bool: ...

@final
class PreparedBlock:
    def __len__(self) -> int: ...
    @property
    def recovery_ns(self) -> int: ...
    @property
    def senders(self) -> list[bytes]: ...
    @property
    def tx_hashes(self) -> list[bytes]: ...

@final
class BlockResult:
    @property
    def receipts(self) -> list[Receipt]: ...
    @property
    def gas_used(self) -> int: ...
    @property
    def tx_hashes(self) -> list[bytes]: ...
    @property
    def senders(self) -> list[bytes]: ...
    @property
    def changes(self) -> list[AccountChange]: ...
    @property
    def stats(self) -> _Stats: ...
    @property
    def elapsed_ns(self) -> int: ...
    @property
    def recovery_ns(self) -> int: ...
    @property
    def execution_ns(self) -> int: ...
    @property
    def tx_nanos(self) -> list[int] | None: ...
    @property
    def ideal_speedup(self) -> float | None: ...
    def same_outcome(self, other: BlockResult) -> bool: ...
    def digest(self) -> bytes: ...
    def __len__(self) -> int: ...

@final
class State:
    __hash__: ClassVar[None]  # type: ignore[assignment]
    def __new__(cls) -> State: ...
    def set_account(
        self,
        address: _Address,
        balance: int,
        nonce: int | None = None,
        code: bytes | bytearray | None = None,
    ) -> None: ...
    def set_storage(self, address: _Address, slot: int, value: int) -> None: ...
    def set_block_hash(self, number: int, hash: bytes | bytearray | str) -> None: ...
    def get_account(self, address: _Address) -> tuple[int, int, bytes] | None: ...
    def get_storage(self, address: _Address, slot: int) -> int: ...
    def get_code(self, address: _Address) -> bytes: ...
    def apply(self, result: BlockResult) -> None: ...
    def copy(self) -> State: ...
    def __copy__(self) -> State: ...
    def __deepcopy__(self, memo: Any, /) -> State: ...
    def __len__(self) -> int: ...
    def __eq__(self, value: object, /) -> bool: ...

def execute(
    env: Mapping[str, Any] | object | None,
    transactions: Iterable[bytes | bytearray],
    state: State,
    *,
    threads: int | None = None,
    sequential: bool = False,
    trace: bool = False,
    trace_runs: int = 1,
    sequential_rule: bool = False,
    **fields: Any,
) -> BlockResult: ...
def prepare(
    env: Mapping[str, Any] | object | None,
    transactions: Iterable[bytes | bytearray],
    *,
    threads: int | None = None,
    **fields: Any,
) -> PreparedBlock: ...
def execute_prepared(
    block: PreparedBlock,
    state: State,
    *,
    threads: int | None = None,
    sequential: bool = False,
    trace: bool = False,
    trace_runs: int = 1,
    sequential_rule: bool = False,
) -> BlockResult: ...
def execute_copies(block: PreparedBlock, state: State, *, copies: int) -> tuple[int, int]: ...
def address_of(secret: bytes | bytearray) -> bytes: ...
def sign_transactions(
    chain_id: int,
    secrets: Iterable[bytes | bytearray],
    requests: Iterable[_Request | _TypedRequest],
) -> list[bytes]: ...
def keccak256(data: bytes | bytearray) -> bytes: ...
def rpc_transactions(block: str | bytes | bytearray) -> list[bytes]: ...
def receipts_root(result: BlockResult) -> bytes: ...
def logs_bloom(result: BlockResult) -> bytes: ...
def transactions_root(transactions: Iterable[bytes | bytearray]) -> bytes: ...
def state_root(state: State) -> bytes: ...
def logs_hash(result: BlockResult) -> bytes: ...
def parse_fork(name: str) -> str: ...
def blob_params(fork: str) -> tuple[int, int, int] | None: ...
def fork_at(schedule: str, number: int, timestamp: int) -> str: ...

@final
class Header:
    @staticmethod
    def decode(rlp: bytes | bytearray | str) -> Header: ...
    @staticmethod
    def of_block(rlp: bytes | bytearray | str) -> Header: ...
    @property
    def hash(self) -> bytes: ...
    @property
    def rlp(self) -> bytes: ...
    @property
    def number(self) -> int: ...
    @property
    def timestamp(self) -> int: ...
    @property
    def parent_hash(self) -> bytes: ...
    @property
    def state_root(self) -> bytes: ...
    @property
    def gas_used(self) -> int: ...
    @property
    def gas_limit(self) -> int: ...
    @property
    def beneficiary(self) -> bytes: ...
    @property
    def transactions_root(self) -> bytes: ...
    @property
    def receipts_root(self) -> bytes: ...
    @property
    def logs_bloom(self) -> bytes: ...
    @property
    def mix_hash(self) -> bytes: ...
    @property
    def extra_data(self) -> bytes: ...
    @property
    def difficulty(self) -> int: ...
    @property
    def nonce(self) -> int: ...
    @property
    def base_fee_per_gas(self) -> int | None: ...
    @property
    def withdrawals_root(self) -> bytes | None: ...
    @property
    def blob_gas_used(self) -> int | None: ...
    @property
    def excess_blob_gas(self) -> int | None: ...
    @property
    def parent_beacon_block_root(self) -> bytes | None: ...
    @property
    def requests_hash(self) -> bytes | None: ...
    def __eq__(self, other: object, /) -> bool: ...
    def __hash__(self) -> int: ...

@final
class ImportedBlock:
    @property
    def header(self) -> Header: ...
    @property
    def result(self) -> BlockResult: ...
    @property
    def fork(self) -> str: ...
    @property
    def hash(self) -> bytes: ...
    @property
    def requests(self) -> list[bytes] | None: ...
    @property
    def rlp(self) -> bytes: ...
    @property
    def transactions(self) -> list[bytes]: ...
    @property
    def withdrawals(self) -> list[tuple[int, int, bytes, int]] | None: ...

_Withdrawal = tuple[int, int, bytes | bytearray | str, int]
"""(index, validator_index, address, amount in gwei)"""

def import_block(
    block: bytes | bytearray | str,
    parent: Header,
    state: State,
    *,
    schedule: str,
    chain_id: int | None = None,
    threads: int | None = None,
    sequential: bool = False,
    sequential_rule: bool = False,
    roots: StateRootTracker | None = None,
) -> ImportedBlock: ...
def build_block(
    parent: Header,
    state: State,
    transactions: Sequence[bytes | bytearray],
    *,
    schedule: str,
    beneficiary: bytes | bytearray | str,
    gas_limit: int,
    timestamp: int,
    prev_randao: bytes | bytearray | str,
    chain_id: int | None = None,
    extra_data: bytes | bytearray | None = None,
    parent_beacon_block_root: bytes | bytearray | str | None = None,
    withdrawals: Sequence[_Withdrawal] | None = None,
    threads: int | None = None,
    sequential_rule: bool = False,
    roots: StateRootTracker | None = None,
) -> ImportedBlock: ...
def genesis_header(
    state: State,
    *,
    schedule: str,
    gas_limit: int,
    timestamp: int,
    extra_data: bytes | bytearray | None = None,
    beneficiary: bytes | bytearray | str | None = None,
    base_fee: int | None = None,
    mix_hash: bytes | bytearray | str | None = None,
    difficulty: int | None = None,
    nonce: int = 0,
) -> Header: ...
def system_contracts() -> list[tuple[bytes, bytes]]: ...
def payload_block(
    fields: Mapping[str, Any],
    transactions: Sequence[bytes | bytearray],
    *,
    withdrawals: Sequence[_Withdrawal] | None = None,
    parent_beacon_block_root: bytes | bytearray | str | None = None,
    requests: Sequence[bytes | bytearray] | None = None,
) -> bytes: ...

class _Authorization(TypedDict):
    chain_id: int
    address: bytes
    nonce: int
    y_parity: int
    r: int
    s: int

class _DecodedTransaction(TypedDict):
    hash: bytes
    sender: bytes | None
    type: int
    chain_id: int | None
    nonce: int
    gas: int
    max_fee_per_gas: int
    max_priority_fee_per_gas: int | None
    max_fee_per_blob_gas: int | None
    blob_versioned_hashes: list[bytes]
    to: bytes | None
    value: int
    input: bytes
    access_list: list[tuple[bytes, list[bytes]]]
    authorization_list: list[_Authorization]
    v: int
    y_parity: int
    r: int
    s: int

@final
class Store:
    def __new__(cls, path: str | os.PathLike[str]) -> Store: ...
    def head(self) -> int | None: ...
    def commit_block(
        self,
        number: int,
        hash: bytes | bytearray | str,
        record: bytes | bytearray,
        tx_hashes: Iterable[bytes | bytearray | str],
        *,
        result: BlockResult | None = None,
        genesis: State | None = None,
        meta: Mapping[str, bytes | bytearray] | None = None,
    ) -> None: ...
    def block(self, number: int) -> bytes | None: ...
    def block_number(self, hash: bytes | bytearray | str) -> int | None: ...
    def transaction(self, hash: bytes | bytearray | str) -> tuple[int, int] | None: ...
    def meta(self, name: str) -> bytes | None: ...
    def load_state(self) -> State: ...
    def execute(
        self,
        env: Mapping[str, Any] | object,
        transactions: Iterable[bytes | bytearray],
        *,
        threads: int | None = None,
    ) -> BlockResult: ...

@final
class CallResult:
    @property
    def success(self) -> bool: ...
    @property
    def reverted(self) -> bool: ...
    @property
    def halt_reason(self) -> str | None: ...
    @property
    def gas_used(self) -> int: ...
    @property
    def output(self) -> bytes: ...
    @property
    def logs(self) -> list[Log]: ...
    @property
    def contract_address(self) -> bytes | None: ...

def call(
    env: Mapping[str, Any] | object,
    state: State,
    *,
    sender: _Address | None = None,
    to: _Address | None = None,
    gas: int | None = None,
    max_fee_per_gas: int | None = None,
    max_priority_fee_per_gas: int | None = None,
    value: int | None = None,
    input: bytes | bytearray | None = None,
    nonce: int | None = None,
    access_list: Iterable[tuple[_Address, Iterable[bytes | bytearray | str]]] | None = None,
) -> CallResult: ...
def estimate_gas(
    env: Mapping[str, Any] | object,
    state: State,
    *,
    sender: _Address | None = None,
    to: _Address | None = None,
    gas: int | None = None,
    max_fee_per_gas: int | None = None,
    max_priority_fee_per_gas: int | None = None,
    value: int | None = None,
    input: bytes | bytearray | None = None,
    nonce: int | None = None,
    access_list: Iterable[tuple[_Address, Iterable[bytes | bytearray | str]]] | None = None,
) -> int | CallResult: ...
def decode_transaction(raw: bytes | bytearray, *, recover: bool = True) -> _DecodedTransaction: ...

class _BlobSidecar(TypedDict):
    blobs: list[bytes]
    commitments: list[bytes]
    proofs: list[bytes]

class _PooledTransaction(_DecodedTransaction):
    raw: bytes
    sidecar: _BlobSidecar | None

def decode_pooled_transaction(raw: bytes | bytearray) -> _PooledTransaction: ...
def validate_blob_sidecar(
    versioned_hashes: Sequence[bytes | bytearray | str],
    blobs: Sequence[bytes | bytearray | str],
    commitments: Sequence[bytes | bytearray | str],
    proofs: Sequence[bytes | bytearray | str],
    *,
    max_blobs: int,
) -> None: ...

class _StorageProof(TypedDict):
    slot: int
    value: int
    proof: list[bytes]

class _AccountProof(TypedDict):
    address: bytes
    exists: bool
    balance: int
    nonce: int
    code_hash: bytes
    storage_root: bytes
    account_proof: list[bytes]
    storage_proofs: list[_StorageProof]

def account_proof(state: State, address: _Address, slots: Iterable[int]) -> _AccountProof: ...

@final
class StateRootTracker:
    def __new__(cls, state: State) -> StateRootTracker: ...
    def apply(self, result: BlockResult) -> None: ...
    def root(self) -> bytes: ...
