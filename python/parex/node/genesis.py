"""
The chain a node starts from: the built-in dev preset or a geth-style genesis file.

The dev preset funds the ten standard dev accounts of the mnemonic
``test test test test test test test test test test test junk`` (BIP-44
``m/44'/60'/0'/0/i``), as anvil and Hardhat do, with 10,000 ether each.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_account import Account as EthAccount

from .. import _core
from .._core import State
from ..engine import Address

DEV_MNEMONIC = "test test test test test test test test test test test junk"
DEV_ACCOUNTS = 10
DEV_BALANCE = 10_000 * 10**18
DEFAULT_CHAIN_ID = 31337
"""anvil's and Hardhat's dev chain id: wallets and tools already know it."""
DEFAULT_GAS_LIMIT = 30_000_000
INITIAL_BASE_FEE = 1_000_000_000
"""1 gwei, as anvil and geth start."""
FORK = "prague"


class GenesisError(ValueError):
    """A genesis file that cannot be used; the message names the field."""


@dataclass(frozen=True, slots=True)
class DevAccount:
    address: Address
    secret: bytes


@dataclass(frozen=True, slots=True)
class GenesisAccount:
    balance: int = 0
    nonce: int = 0
    code: bytes = b""
    storage: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Genesis:
    chain_id: int
    gas_limit: int
    base_fee: int
    timestamp: int
    extra_data: bytes
    coinbase: Address
    alloc: dict[Address, GenesisAccount]
    dev_accounts: tuple[DevAccount, ...] = ()
    schedule: str = FORK
    """The fork schedule (parex's syntax; a geth ``config``'s forks, else Prague from genesis)."""
    difficulty: int = 0
    mix_hash: bytes = bytes(32)
    nonce: int = 0

    def state(self) -> State:
        """The genesis state."""
        state = State()
        for address, account in self.alloc.items():
            state.set_account(address, account.balance, account.nonce, account.code or None)
            for slot, value in account.storage.items():
                state.set_storage(address, slot, value)
        return state

    def to_json(self) -> bytes:
        """The chain configuration the store keeps, so a restart needs no flags."""
        return json.dumps(
            {
                "chainId": self.chain_id,
                "gasLimit": self.gas_limit,
                "baseFee": self.base_fee,
                "timestamp": self.timestamp,
                "extraData": "0x" + self.extra_data.hex(),
                "coinbase": "0x" + self.coinbase.hex(),
                "schedule": self.schedule,
            }
        ).encode()


GETH_FORK_KEYS: tuple[tuple[str, str], ...] = (
    ("homesteadBlock", "Homestead"),
    ("eip150Block", "TangerineWhistle"),
    ("eip158Block", "SpuriousDragon"),
    ("byzantiumBlock", "Byzantium"),
    ("constantinopleBlock", "Constantinople"),
    ("petersburgBlock", "Petersburg"),
    ("istanbulBlock", "Istanbul"),
    ("muirGlacierBlock", "MuirGlacier"),
    ("berlinBlock", "Berlin"),
    ("londonBlock", "London"),
    ("arrowGlacierBlock", "ArrowGlacier"),
    ("grayGlacierBlock", "GrayGlacier"),
    ("mergeNetsplitBlock", "Paris"),
    ("shanghaiTime", "Shanghai"),
    ("cancunTime", "Cancun"),
    ("pragueTime", "Prague"),
    ("osakaTime", "Osaka"),
)
"""geth genesis ``config`` keys and the parex fork each activates (``...Time``: by timestamp)."""


def schedule_from_geth_config(config: dict[str, Any]) -> tuple[str, list[str]]:
    """
    The parex fork schedule (``"Frontier@0,Homestead@0,...,Shanghai@t390"``) of a geth genesis
    ``config``, and the config's fork keys parex does not model (the blob-parameter-only
    ``bpo1Time``... forks, which keep the rules of the fork before them). The Merge is
    ``mergeNetsplitBlock``, or genesis when ``terminalTotalDifficulty`` is 0.
    """
    entries = ["Frontier@0"]
    for key, fork in GETH_FORK_KEYS:
        value = config.get(key)
        if value is None:
            continue
        at = _int(value, f"config.{key}")
        entries.append(f"{fork}@t{at}" if key.endswith("Time") else f"{fork}@{at}")
    if config.get("mergeNetsplitBlock") is None and config.get("terminalTotalDifficulty") in (0, "0", "0x0"):
        entries.append("Paris@0")
    unmodelled = sorted(k for k in config if k.startswith("bpo") and k.endswith("Time"))
    return ",".join(entries), unmodelled


def dev_accounts(
    count: int = DEV_ACCOUNTS, mnemonic: str = DEV_MNEMONIC
) -> tuple[DevAccount, ...]:
    """The first ``count`` BIP-44 accounts of ``mnemonic`` (eth-account's HD wallet)."""
    EthAccount.enable_unaudited_hdwallet_features()
    out = []
    for i in range(count):
        account = EthAccount.from_mnemonic(mnemonic, account_path=f"m/44'/60'/0'/0/{i}")
        out.append(DevAccount(bytes.fromhex(account.address[2:]), bytes(account.key)))
    return tuple(out)


def system_contract_alloc() -> dict[Address, GenesisAccount]:
    """The Prague system contracts (EIP-4788, 2935, 7002, 7251) as genesis accounts."""
    return {address: GenesisAccount(nonce=1, code=code) for address, code in _core.system_contracts()}


REQUIRED_SYSTEM_CONTRACTS = {
    bytes.fromhex("00000961ef480eb55e80d19ad83579a64c007002"): "EIP-7002 withdrawal requests",
    bytes.fromhex("0000bbddc7ce488642fb579f8b00f3a590007251"): "EIP-7251 consolidation requests",
}
"""Prague calls these after every block and rejects a block where one has no code."""


def check_system_contracts(alloc: dict[Address, GenesisAccount]) -> None:
    """Raises ``GenesisError`` when a system contract Prague requires has no code."""
    missing = [
        f"0x{address.hex()} ({what})"
        for address, what in REQUIRED_SYSTEM_CONTRACTS.items()
        if not (alloc.get(address) or GenesisAccount()).code
    ]
    if missing:
        raise GenesisError(
            "alloc: Prague requires the system contracts "
            + ", ".join(missing)
            + "; deploy them in the genesis (their code is in the EIPs; `parex node` without "
            "--genesis deploys all four)"
        )


def dev_genesis(chain_id: int = DEFAULT_CHAIN_ID, gas_limit: int = DEFAULT_GAS_LIMIT) -> Genesis:
    accounts = dev_accounts()
    return Genesis(
        chain_id=chain_id,
        gas_limit=gas_limit,
        base_fee=INITIAL_BASE_FEE,
        timestamp=0,
        extra_data=b"",
        coinbase=bytes(20),
        alloc={
            **system_contract_alloc(),
            **{a.address: GenesisAccount(balance=DEV_BALANCE) for a in accounts},
        },
        dev_accounts=accounts,
    )


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise GenesisError(f"{name}: expected a number, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise GenesisError(f"{name}: must not be negative")
        return value
    if isinstance(value, str):
        try:
            number = int(value, 16) if value.lower().startswith("0x") else int(value)
        except ValueError:
            raise GenesisError(f"{name}: not a number: {value!r}") from None
        if number < 0:
            raise GenesisError(f"{name}: must not be negative")
        return number
    raise GenesisError(f"{name}: expected a number, got {type(value).__name__}")


def _bytes(value: Any, name: str, size: int | None = None) -> bytes:
    if not isinstance(value, str):
        raise GenesisError(f"{name}: expected a hex string")
    text = value[2:] if value.lower().startswith("0x") else value
    if len(text) % 2:
        text = "0" + text
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise GenesisError(f"{name}: not hex: {value!r}") from None
    if size is not None:
        if len(raw) > size:
            raise GenesisError(f"{name}: expected {size} bytes, got {len(raw)}")
        raw = raw.rjust(size, b"\0")
    return raw


def _or(value: Any, default: Any) -> Any:
    """``value``, or ``default`` where the file has null or nothing."""
    return default if value is None else value


def load_genesis(
    path: Path, *, chain_id: int | None = None, gas_limit: int | None = None
) -> Genesis:
    """
    Reads a geth-style genesis JSON file: ``config.chainId``, ``alloc`` (balance, nonce, code,
    storage), ``gasLimit``, ``baseFeePerGas``, ``timestamp``, ``extraData``, ``coinbase``.
    ``chain_id`` and ``gas_limit`` override the file's values when given.
    """
    try:
        doc = json.loads(path.read_text())
    except OSError as e:
        raise GenesisError(f"cannot read genesis file {path}: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise GenesisError(f"genesis file {path} is not JSON: {e}") from None
    if not isinstance(doc, dict):
        raise GenesisError("genesis: expected a JSON object")
    config = doc.get("config", {})
    if not isinstance(config, dict):
        raise GenesisError("config: expected an object")
    alloc_doc = doc.get("alloc", {})
    if not isinstance(alloc_doc, dict):
        raise GenesisError("alloc: expected an object of address -> account")
    alloc: dict[Address, GenesisAccount] = {}
    for key, entry in alloc_doc.items():
        name = f"alloc[{key}]"
        address = _bytes(key if key.lower().startswith("0x") else "0x" + key, name)
        if len(address) != 20:
            raise GenesisError(f"{name}: an address is 20 bytes, got {len(address)}")
        if not isinstance(entry, dict):
            raise GenesisError(f"{name}: expected an object")
        storage_doc = entry.get("storage", {})
        if not isinstance(storage_doc, dict):
            raise GenesisError(f"{name}.storage: expected an object")
        alloc[address] = GenesisAccount(
            balance=_int(entry.get("balance", 0), f"{name}.balance"),
            nonce=_int(entry.get("nonce", 0), f"{name}.nonce"),
            code=_bytes(entry.get("code", "0x"), f"{name}.code"),
            storage={
                int.from_bytes(_bytes(k, f"{name}.storage key", 32), "big"): int.from_bytes(
                    _bytes(v, f"{name}.storage[{k}]", 32), "big"
                )
                for k, v in storage_doc.items()
            },
        )
    file_chain_id = config.get("chainId")
    has_forks = any(key in config for key, _ in GETH_FORK_KEYS)
    schedule = schedule_from_geth_config(config)[0] if has_forks else FORK
    genesis = Genesis(
        chain_id=chain_id
        if chain_id is not None
        else (_int(file_chain_id, "config.chainId") if file_chain_id is not None else DEFAULT_CHAIN_ID),
        gas_limit=gas_limit
        if gas_limit is not None
        else _int(doc.get("gasLimit", DEFAULT_GAS_LIMIT), "gasLimit"),
        base_fee=_int(_or(doc.get("baseFeePerGas"), INITIAL_BASE_FEE), "baseFeePerGas"),
        timestamp=_int(doc.get("timestamp", 0), "timestamp"),
        extra_data=_bytes(doc.get("extraData", "0x"), "extraData"),
        coinbase=_bytes(doc.get("coinbase", "0x" + "00" * 20), "coinbase", 20),
        alloc=alloc,
        schedule=schedule,
        difficulty=_int(doc.get("difficulty", 0), "difficulty"),
        mix_hash=_bytes(doc.get("mixHash", "0x" + "00" * 32), "mixHash", 32),
        nonce=_int(doc.get("nonce", 0), "nonce"),
    )
    try:
        genesis_fork = _core.fork_at(schedule, 0, genesis.timestamp)
    except ValueError as e:
        raise GenesisError(f"config: {e}") from None
    if genesis_fork in ("Prague", "Osaka"):
        check_system_contracts(alloc)
    return genesis
