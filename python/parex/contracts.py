"""
The benchmark contracts (``contracts/src/*.sol``) and ABI encoding of calls to them.

The artifacts are compiled from source by ``make contracts`` (solc-js, pinned in
``contracts/package-lock.json``) into ``parex/_contracts/``.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode

from ._core import keccak256


class ArtifactMissing(RuntimeError):
    """The compiled contracts are not there: run ``make contracts``."""


@dataclass(frozen=True, slots=True)
class Contract:
    """A compiled contract."""

    name: str
    abi: tuple[dict[str, Any], ...]
    bytecode: bytes
    deployed_bytecode: bytes

    def deploy_data(self, *args: Any) -> bytes:
        """Creation code followed by the ABI-encoded constructor arguments."""
        constructor = next((e for e in self.abi if e["type"] == "constructor"), None)
        types = [i["type"] for i in constructor["inputs"]] if constructor else []
        if len(types) != len(args):
            raise ValueError(
                f"{self.name} constructor takes {len(types)} arguments, got {len(args)}"
            )
        return self.bytecode + abi_encode(types, list(args))


@functools.cache
def load(name: str) -> Contract:
    """The compiled contract ``name`` (``"Token"`` or ``"Pair"``)."""
    path = resources.files("parex") / "_contracts" / f"{name}.json"
    try:
        artifact = json.loads(path.read_text())
    except FileNotFoundError:
        raise ArtifactMissing(
            f"contract artifact {name}.json not found; run `make contracts`"
        ) from None
    return Contract(
        name=name,
        abi=tuple(artifact["abi"]),
        bytecode=bytes.fromhex(artifact["bytecode"].removeprefix("0x")),
        deployed_bytecode=bytes.fromhex(
            artifact["deployedBytecode"].removeprefix("0x")
        ),
    )


def _split_types(signature: str) -> tuple[str, list[str]]:
    name, _, rest = signature.partition("(")
    if not rest.endswith(")"):
        raise ValueError(f"malformed function signature {signature!r}")
    inner = rest[:-1]
    return name, [t for t in inner.split(",") if t] if inner else []


@functools.cache
def selector(signature: str) -> bytes:
    """The 4-byte selector of ``signature``, e.g. ``"transfer(address,uint256)"``."""
    return keccak256(signature.encode())[:4]


def encode_call(signature: str, *args: Any) -> bytes:
    """Calldata for ``signature`` called with ``args``."""
    _, types = _split_types(signature)
    if len(types) != len(args):
        raise ValueError(f"{signature} takes {len(types)} arguments, got {len(args)}")
    return selector(signature) + abi_encode(types, list(args))


def decode_words(data: bytes, *types: str) -> tuple[Any, ...]:
    """ABI-decodes return data or log data."""
    return tuple(abi_decode(list(types), data))
