"""
Deterministic benchmark workloads: blocks of real signed transactions on a prepared state.

Every generator takes ``txs`` (the size of the measured block), ``conflict`` (the percentage
of its transactions that touch one *hot* account or pair) and ``seed``, and returns a
:class:`Workload`: the pre-state after set-up, the block environment and the raw signed
transactions. The same arguments always give the same bytes.

Shared rules:

- Keys are derived from the seed with keccak, never random; every transaction of the measured
  block comes from its own sender, so nonces never chain two transactions together and the
  only conflicts are the ones the workload asks for.
- Set-up (deploying contracts, minting, adding liquidity, approvals) runs as ordinary blocks
  through the engine itself, and each set-up block is applied with ``state.apply(result)``.
- Transactions are EIP-1559 with a non-zero priority fee, on chain id 1 unless told.

The hot transactions:

``transfer``
    Ether transfers to one hot recipient. parex applies a plain value transfer's credit as a
    lazy balance delta (the recipient's balance is added to, never read), so these do *not*
    serialise: even ``conflict=100`` runs in parallel. So do the priority fees every
    transaction pays to the block's beneficiary.
``erc20``
    ``Token.transfer`` to one hot recipient: every hot transaction reads and writes the same
    ``balanceOf`` slot, a real storage conflict.
``amm``
    Swaps on one hot ``Pair``: every hot transaction reads and writes its reserves and its
    token balances. Each cold transaction swaps on a pair of its own.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from . import contracts
from ._core import BlockResult, State, address_of, keccak256, sign_transactions
from .engine import Address, BlockEnv, Engine, Gas, Wei

CHAIN_ID = 1
GWEI: Wei = 10**9
ETHER: Wei = 10**18
BASE_FEE: Wei = 1 * GWEI
PRIORITY_FEE: Wei = 1 * GWEI
MAX_FEE: Wei = 3 * GWEI
SENDER_FUNDS: Wei = 1_000 * ETHER
DEPLOYER_FUNDS: Wei = 10_000_000 * ETHER
TOKEN_FUNDS = 10**24
"""Token units minted to each sender (18 decimals: one million tokens)."""
POOL_LIQUIDITY = 10**27
"""Token units of each side of each pair's reserves."""
MAX_UINT256 = 2**256 - 1

SET_UP_BLOCK_TXS = 2_000
"""Set-up transactions per set-up block."""
MINT_BATCH = 250
"""Recipients per ``mintBatch`` call (about 6M gas)."""
BLOCK_GAS_LIMIT: Gas = 30_000_000


# -- keys and accounts ------------------------------------------------------------------


def secret_key(seed: int, role: str, index: int) -> bytes:
    """The secret key of account ``index`` of ``role``, derived from ``seed``."""
    return keccak256(f"parex/workload/{seed}/{role}/{index}".encode())


def plain_address(seed: int, role: str, index: int) -> Address:
    """An address nobody holds a key for (recipients, the beneficiary)."""
    return keccak256(f"parex/address/{seed}/{role}/{index}".encode())[12:]


@dataclass(slots=True)
class Account:
    """A key and the nonce its next transaction will use."""

    secret: bytes
    address: Address
    nonce: int = 0


def derive_accounts(seed: int, role: str, count: int) -> list[Account]:
    """``count`` accounts of ``role``; the same seed gives the same accounts."""
    secrets = [secret_key(seed, role, i) for i in range(count)]
    return [Account(secret, address_of(secret)) for secret in secrets]


# -- transactions -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Call:
    """An unsigned transaction; ``to=None`` creates a contract."""

    sender: Account
    to: Address | None
    data: bytes = b""
    value: Wei = 0
    gas_limit: Gas = 100_000
    tx_type: int = 2
    """2: EIP-1559; 1: EIP-2930 and 0: legacy pay ``max_fee`` as their gas price."""


def sign_calls(
    calls: Sequence[Call],
    chain_id: int = CHAIN_ID,
    max_fee: Wei = MAX_FEE,
    priority_fee: Wei = PRIORITY_FEE,
) -> list[bytes]:
    """
    Signs ``calls`` (EIP-1559 unless a call says otherwise) in one batch, in parallel, in
    Rust. Each call takes its sender's next nonce.
    """
    requests = []
    for call in calls:
        requests.append(
            (
                call.sender.nonce,
                call.to,
                call.value,
                call.data,
                call.gas_limit,
                max_fee,
                priority_fee,
                call.tx_type,
            )
        )
        call.sender.nonce += 1
    return sign_transactions(chain_id, [c.sender.secret for c in calls], requests)


def block_gas(calls: Iterable[Call]) -> Gas:
    """A block gas limit that fits every call: at least the mainnet-like 30M."""
    return max(BLOCK_GAS_LIMIT, sum(c.gas_limit for c in calls))


# -- set-up -----------------------------------------------------------------------------


class SetUpError(RuntimeError):
    """A set-up transaction failed: the workload would not measure what it claims."""


@dataclass(slots=True)
class Chain:
    """A state and the next block's environment, for running set-up blocks."""

    state: State
    env: BlockEnv
    engine: Engine = field(default_factory=lambda: Engine(threads=1))

    def run(self, calls: Sequence[Call]) -> list[BlockResult]:
        """
        Signs ``calls`` and executes them in blocks of at most ``SET_UP_BLOCK_TXS``, applying
        each block to the state. Every transaction must succeed.
        """
        results = []
        for start in range(0, len(calls), SET_UP_BLOCK_TXS):
            chunk = calls[start : start + SET_UP_BLOCK_TXS]
            env = self.env.replace(gas_limit=block_gas(chunk))
            txs = sign_calls(chunk, chain_id=env.chain_id)
            result = self.engine.execute_sequential(env, txs, self.state)
            failed = [i for i, r in enumerate(result.receipts) if not r.success]
            if failed:
                raise SetUpError(
                    f"set-up block {env.number}: {len(failed)} transaction(s) reverted, "
                    f"first at index {failed[0]}"
                )
            self.state.apply(result)
            self.env = self.env.replace(
                number=env.number + 1, timestamp=env.timestamp + 12
            )
            results.append(result)
        return results

    def deploy(self, deployer: Account, creations: Sequence[bytes]) -> list[Address]:
        """Deploys each creation code; returns the contract addresses."""
        calls = [
            Call(deployer, None, code, gas_limit=300_000 + 300 * len(code))
            for code in creations
        ]
        addresses: list[Address] = []
        for result in self.run(calls):
            for receipt in result.receipts:
                assert receipt.contract_address is not None
                addresses.append(receipt.contract_address)
        return addresses


def mint_calls(
    minter: Account, token: Address, recipients: Sequence[Address], amount: int
) -> list[Call]:
    """``Token.mintBatch`` calls crediting ``amount`` to every recipient."""
    calls = []
    for start in range(0, len(recipients), MINT_BATCH):
        batch = list(recipients[start : start + MINT_BATCH])
        data = contracts.encode_call("mintBatch(address[],uint256)", batch, amount)
        calls.append(Call(minter, token, data, gas_limit=60_000 + 28_000 * len(batch)))
    return calls


def genesis(seed: int, chain_id: int = CHAIN_ID) -> tuple[Chain, Account]:
    """An empty chain with a funded deployer."""
    deployer = derive_accounts(seed, "deployer", 1)[0]
    state = State()
    state.set_account(deployer.address, DEPLOYER_FUNDS)
    env = BlockEnv(
        number=1,
        timestamp=1_700_000_000,
        beneficiary=plain_address(seed, "beneficiary", 0),
        base_fee=BASE_FEE,
        gas_limit=BLOCK_GAS_LIMIT,
        prevrandao=keccak256(f"parex/prevrandao/{seed}".encode()),
        chain_id=chain_id,
    )
    return Chain(state, env), deployer


def fund(state: State, accounts: Iterable[Account], amount: Wei = SENDER_FUNDS) -> None:
    """Gives each account ``amount`` wei in the pre-state."""
    for account in accounts:
        state.set_account(account.address, amount)


# -- workloads --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Workload:
    """A measured block and the state it runs on."""

    name: str
    block_env: BlockEnv
    pre_state: State
    transactions: list[bytes]
    conflict: int = 0
    seed: int = 0
    hot: frozenset[int] = frozenset()
    """Indices of the transactions that touch the hot account or pair."""


def _check(txs: int, conflict: int) -> None:
    if isinstance(txs, bool) or not isinstance(txs, int) or txs < 1:
        raise ValueError(f"txs: must be a positive int, got {txs!r}")
    if isinstance(conflict, bool) or not isinstance(conflict, int):
        raise ValueError(f"conflict: must be an int percentage, got {conflict!r}")
    if not 0 <= conflict <= 100:
        raise ValueError(f"conflict: must be between 0 and 100, got {conflict}")


def hot_indices(rng: random.Random, txs: int, conflict: int) -> frozenset[int]:
    """``conflict`` percent of ``range(txs)``, chosen by ``rng``."""
    return frozenset(rng.sample(range(txs), round(txs * conflict / 100)))


def _measured(
    name: str,
    chain: Chain,
    calls: Sequence[Call],
    conflict: int,
    seed: int,
    hot: frozenset[int],
) -> Workload:
    env = chain.env.replace(gas_limit=block_gas(calls))
    return Workload(
        name=name,
        block_env=env,
        pre_state=chain.state,
        transactions=sign_calls(calls, chain_id=env.chain_id),
        conflict=conflict,
        seed=seed,
        hot=hot,
    )


def transfer(
    txs: int, conflict: int = 0, seed: int = 0, chain_id: int = CHAIN_ID
) -> Workload:
    """
    Ether transfers, each to a fresh recipient, or to the hot recipient for ``conflict``
    percent of them.
    """
    _check(txs, conflict)
    rng = random.Random(f"transfer/{seed}/{conflict}")
    hot = hot_indices(rng, txs, conflict)
    chain, _ = genesis(seed, chain_id)
    senders = derive_accounts(seed, "sender", txs)
    fund(chain.state, senders)
    hot_recipient = plain_address(seed, "hot", 0)
    calls = [
        Call(
            sender,
            hot_recipient if i in hot else plain_address(seed, "recipient", i),
            value=rng.randrange(1, 10**16),
            gas_limit=21_000,
        )
        for i, sender in enumerate(senders)
    ]
    return _measured("transfer", chain, calls, conflict, seed, hot)


def erc20(
    txs: int, conflict: int = 0, seed: int = 0, chain_id: int = CHAIN_ID
) -> Workload:
    """
    ``Token.transfer`` calls, each to a fresh recipient, or to the hot recipient for
    ``conflict`` percent of them. Set-up deploys the token and mints to every sender.
    """
    _check(txs, conflict)
    rng = random.Random(f"erc20/{seed}/{conflict}")
    hot = hot_indices(rng, txs, conflict)
    chain, deployer = genesis(seed, chain_id)
    senders = derive_accounts(seed, "sender", txs)
    fund(chain.state, senders)

    token_contract = contracts.load("Token")
    (token,) = chain.deploy(deployer, [token_contract.deploy_data("Parex Token", "PRX")])
    chain.run(mint_calls(deployer, token, [s.address for s in senders], TOKEN_FUNDS))

    hot_recipient = plain_address(seed, "hot", 0)
    calls = []
    for i, sender in enumerate(senders):
        to = hot_recipient if i in hot else plain_address(seed, "recipient", i)
        amount = rng.randrange(1, 10**20)
        data = contracts.encode_call("transfer(address,uint256)", to, amount)
        calls.append(Call(sender, token, data, gas_limit=100_000))
    return _measured("erc20", chain, calls, conflict, seed, hot)


@dataclass(frozen=True, slots=True)
class Market:
    """Two tokens and pairs over them, with liquidity."""

    token0: Address
    token1: Address
    pairs: list[Address]


def deploy_market(chain: Chain, deployer: Account, pairs: int) -> Market:
    """Deploys two tokens and ``pairs`` pairs over them, each with ``POOL_LIQUIDITY``."""
    token_contract = contracts.load("Token")
    pair_contract = contracts.load("Pair")
    token0, token1 = chain.deploy(
        deployer,
        [
            token_contract.deploy_data("Parex Zero", "PX0"),
            token_contract.deploy_data("Parex One", "PX1"),
        ],
    )
    pair_code = pair_contract.deploy_data(token0, token1)
    addresses = chain.deploy(deployer, [pair_code] * pairs)
    liquidity = mint_calls(deployer, token0, addresses, POOL_LIQUIDITY)
    liquidity += mint_calls(deployer, token1, addresses, POOL_LIQUIDITY)
    sync = contracts.encode_call("sync()")
    liquidity += [Call(deployer, pair, sync, gas_limit=120_000) for pair in addresses]
    chain.run(liquidity)
    return Market(token0, token1, addresses)


def swap_call(sender: Account, pair: Address, amount_in: int, zero_for_one: bool) -> Call:
    """``Pair.swap`` paying ``amount_in`` and sending the output back to the sender."""
    data = contracts.encode_call(
        "swap(uint256,bool,address)", amount_in, zero_for_one, sender.address
    )
    return Call(sender, pair, data, gas_limit=200_000)


def approve_calls(
    market: Market, traders: Sequence[tuple[Account, Address, bool]]
) -> list[Call]:
    """Unlimited approvals of each trader's input token to its pair."""
    calls = []
    for trader, pair, zero_for_one in traders:
        token = market.token0 if zero_for_one else market.token1
        data = contracts.encode_call("approve(address,uint256)", pair, MAX_UINT256)
        calls.append(Call(trader, token, data, gas_limit=80_000))
    return calls


def amm(txs: int, conflict: int = 0, seed: int = 0, chain_id: int = CHAIN_ID) -> Workload:
    """
    Swaps: each cold transaction on a pair of its own, the hot ones on one shared pair.
    Set-up deploys two tokens and one pair per cold transaction plus the hot pair, adds
    liquidity, mints each trader its input token and approves the trader's pair.
    """
    _check(txs, conflict)
    rng = random.Random(f"amm/{seed}/{conflict}")
    hot = hot_indices(rng, txs, conflict)
    chain, deployer = genesis(seed, chain_id)
    senders = derive_accounts(seed, "sender", txs)
    fund(chain.state, senders)

    market = deploy_market(chain, deployer, txs - len(hot) + 1)
    hot_pair, cold_pairs = market.pairs[0], iter(market.pairs[1:])
    traders = [
        (sender, hot_pair if i in hot else next(cold_pairs), rng.random() < 0.5)
        for i, sender in enumerate(senders)
    ]
    zero = [t.address for t, _, zero_for_one in traders if zero_for_one]
    one = [t.address for t, _, zero_for_one in traders if not zero_for_one]
    chain.run(
        mint_calls(deployer, market.token0, zero, TOKEN_FUNDS)
        + mint_calls(deployer, market.token1, one, TOKEN_FUNDS)
        + approve_calls(market, traders)
    )
    calls = [
        swap_call(trader, pair, rng.randrange(10**18, 10**20), zero_for_one)
        for trader, pair, zero_for_one in traders
    ]
    return _measured("amm", chain, calls, conflict, seed, hot)


WORKLOADS: dict[str, Callable[..., Workload]] = {
    "transfer": transfer,
    "erc20": erc20,
    "amm": amm,
}
"""The generators by name, as ``parex bench --workload`` spells them."""
