"""
Where a `parex node` block's time goes: the sequencer's `Chain.build_block` on blocks of
ERC-20 transfers, in process (no RPC, no pool), with the real store in a temporary folder.

    .venv/bin/python benches/node_blocks.py [--senders 20000] [--block 1333] [--blocks 10]

Prints the median seconds per phase: build (parex-chain's build_block: system calls,
decoding and recovery, Block-STM, requests, commitments with the state root taken
incrementally through the tracker, the sealed header; then the node's record), apply + root
(the hot state and the tracker follow the block, checked against the header), commit (record
encoding and one durable redb write transaction), and the implied block capacity in tx/s.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
from pathlib import Path

from parex import contracts
from parex.engine import default_threads
from parex.node.chain import Chain
from parex.node.genesis import GenesisAccount, dev_genesis
from parex.workloads import Account, Call, derive_accounts, mint_calls, plain_address, sign_calls


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--senders", type=int, default=20_000)
    parser.add_argument("--block", type=int, default=1_333)
    parser.add_argument("--blocks", type=int, default=10)
    parser.add_argument("--threads", type=int, default=default_threads())
    args = parser.parse_args()

    base = dev_genesis(gas_limit=1_000_000_000)
    senders = derive_accounts(0, "bench-sender", args.senders)
    alloc = dict(base.alloc)
    for s in senders:
        alloc[s.address] = GenesisAccount(balance=10**20)
    genesis = dataclasses.replace(base, alloc=alloc)
    deployer = Account(base.dev_accounts[0].secret, base.dev_accounts[0].address)
    chain_id = genesis.chain_id

    with tempfile.TemporaryDirectory() as tmp:
        chain = Chain.open(Path(tmp), genesis, threads=args.threads)
        token_code = contracts.load("Token").deploy_data("Bench", "B")
        built = chain.build_block(sign_calls([Call(deployer, None, token_code, gas_limit=3_000_000)], chain_id))
        token = built.block.receipts[0].contract_address
        assert token is not None
        mints = mint_calls(deployer, token, [s.address for s in senders], 10**24)
        for start in range(0, len(mints), 100):
            chain.build_block(sign_calls(mints[start : start + 100], chain_id))
        phases: dict[str, list[float]] = {}
        for b in range(args.blocks):
            calls = []
            for i in range(args.block):
                sender = senders[(b * args.block + i) % len(senders)]
                to = plain_address(0, "bench-recipient", b * args.block + i)
                data = contracts.encode_call("transfer(address,uint256)", to, 1)
                calls.append(Call(sender, token, data, gas_limit=60_000))
            built = chain.build_block(sign_calls(calls, chain_id))
            assert len(built.block.transactions) == args.block and not built.dropped
            for name, seconds in built.timings.items():
                phases.setdefault(name, []).append(seconds)
        state_accounts = len(chain.state)
    total = 0.0
    print(f"{args.block} ERC-20 transfers per block, {state_accounts} accounts in state, {args.threads} threads")
    for name, values in phases.items():
        median = statistics.median(values)
        total += median
        print(f"  {name:15} {median * 1000:8.1f} ms")
    print(f"  {'total':15} {total * 1000:8.1f} ms  -> {args.block / total:,.0f} tx/s of block building")


if __name__ == "__main__":
    main()
