"""
``parex node``: a dev chain with a built-in sequencer, persistence and JSON-RPC.

- :mod:`.genesis`: the dev preset (the ten standard dev accounts) and geth genesis files;
- :mod:`.chain`: the store (redb), the hot state, block building and records;
- :mod:`.mempool`: admission checks and priority-fee ordering with nonce gaps held back;
- :mod:`.rpc`: the eth_* JSON-RPC methods, geth's error codes;
- :mod:`.engine_api`: the JWT-authenticated Engine API endpoint;
- :mod:`.server`: the sequencer thread and the HTTP servers.
"""

from .chain import BlockRecord, Chain, ChainError
from .genesis import DEFAULT_CHAIN_ID, DevAccount, Genesis, GenesisError, dev_accounts, dev_genesis, load_genesis
from .mempool import Mempool, PoolError
from .rpc import Rpc, RpcError
from .server import NodeConfig, Sequencer, run_node

__all__ = [
    "DEFAULT_CHAIN_ID",
    "BlockRecord",
    "Chain",
    "ChainError",
    "DevAccount",
    "Genesis",
    "GenesisError",
    "Mempool",
    "NodeConfig",
    "PoolError",
    "Rpc",
    "RpcError",
    "Sequencer",
    "dev_accounts",
    "dev_genesis",
    "load_genesis",
    "run_node",
]
