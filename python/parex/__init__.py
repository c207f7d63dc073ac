"""
parex: Block-STM parallel execution of Ethereum blocks.

The engine is Rust (revm under a VM-agnostic Block-STM scheduler); this package is its
Python front: build a :class:`State`, describe the block with a :class:`BlockEnv`, and run
raw signed transactions through an :class:`Engine`, or import whole blocks
(:meth:`Engine.import_block`).
"""

from ._core import (
    FORKS,
    AccountChange,
    BlockResult,
    DecodeError,
    Header,
    ImportedBlock,
    InvalidBlock,
    InvalidTransaction,
    Log,
    ParexError,
    PreparedBlock,
    Receipt,
    SignatureError,
    State,
    StateError,
    TransactionError,
    __version__,
    address_of,
    keccak256,
    sign_transactions,
)
from .engine import BlockEnv, Engine, Fork

__all__ = [
    "FORKS",
    "AccountChange",
    "BlockEnv",
    "BlockResult",
    "DecodeError",
    "Engine",
    "Fork",
    "Header",
    "ImportedBlock",
    "InvalidBlock",
    "InvalidTransaction",
    "Log",
    "ParexError",
    "PreparedBlock",
    "Receipt",
    "SignatureError",
    "State",
    "StateError",
    "TransactionError",
    "__version__",
    "address_of",
    "keccak256",
    "sign_transactions",
]
