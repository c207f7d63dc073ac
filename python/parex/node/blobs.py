"""
EIP-4844 blob parameters of the node's fork, the blob base fee, and blob sidecars.

The pool keeps each blob transaction's sidecar (blobs, KZG commitments and proofs) beside its
canonical encoding; blocks carry only the canonical transaction, and the Engine API's
``blobsBundle`` hands the sidecars of a payload's transactions to the consensus client.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import _core
from .chain import BlockRecord, next_excess_blob_gas
from .genesis import FORK

GAS_PER_BLOB = 131072
"""EIP-4844: blob gas per blob (2**17)."""
MIN_BLOB_BASE_FEE = 1
"""EIP-4844: MIN_BASE_FEE_PER_BLOB_GAS."""


@dataclass(frozen=True, slots=True)
class BlobParams:
    """EIP-7840 blob schedule entry: target and max blobs per block, base fee update fraction."""

    target: int
    max: int
    update_fraction: int

    @property
    def max_blob_gas(self) -> int:
        return self.max * GAS_PER_BLOB


def fork_blob_params(fork: str = FORK) -> BlobParams:
    """The blob parameters parex's engine applies under ``fork`` (Cancun or later)."""
    params = _core.blob_params(fork)
    if params is None:
        raise ValueError(f"fork {fork!r} has no blob transactions")
    return BlobParams(*params)


BLOB_PARAMS = fork_blob_params()
"""The node's fork's blob parameters (Prague: target 6, max 9 per block)."""
MAX_BLOBS_PER_TX = BLOB_PARAMS.max
"""Before Osaka (EIP-7594's per-transaction cap of 6) a transaction may fill a block."""


def fake_exponential(factor: int, numerator: int, denominator: int) -> int:
    """EIP-4844's integer approximation of ``factor * e ** (numerator / denominator)``."""
    i = 1
    output = 0
    accum = factor * denominator
    while accum > 0:
        output += accum
        accum = (accum * numerator) // (denominator * i)
        i += 1
    return output // denominator


def blob_base_fee(excess_blob_gas: int, params: BlobParams = BLOB_PARAMS) -> int:
    """The blob base fee of a block with ``excess_blob_gas`` (EIP-4844, EIP-7691 fraction)."""
    return fake_exponential(MIN_BLOB_BASE_FEE, excess_blob_gas, params.update_fraction)


@dataclass(frozen=True, slots=True)
class BlobSidecar:
    """The network-form payload of a blob transaction: one commitment and proof per blob."""

    blobs: tuple[bytes, ...]
    commitments: tuple[bytes, ...]
    proofs: tuple[bytes, ...]

    def __len__(self) -> int:
        return len(self.blobs)


def validate_sidecar(versioned_hashes: list[bytes], sidecar: BlobSidecar) -> None:
    """
    Checks ``sidecar`` against a transaction's ``versioned_hashes`` (counts, versioned hashes,
    KZG proofs, at most ``MAX_BLOBS_PER_TX``) with c-kzg; raises ``ValueError`` with geth's
    wording.
    """
    _core.validate_blob_sidecar(
        versioned_hashes,
        list(sidecar.blobs),
        list(sidecar.commitments),
        list(sidecar.proofs),
        max_blobs=MAX_BLOBS_PER_TX,
    )


def next_blob_base_fee(parent: BlockRecord) -> int:
    """The blob base fee of the block after ``parent`` (``eth_blobBaseFee``)."""
    return blob_base_fee(next_excess_blob_gas(parent))
