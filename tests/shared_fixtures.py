"""The third-party fixtures beside the project (`../shared/fixtures`, described by its README).

Every checkout has them, so tests use them unconditionally: a missing archive is an error, not
a skip. They are extracted at test time into the ignored `.cache/fixtures`.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "fixtures"
CACHE = ROOT / ".cache" / "fixtures"
EEST = SHARED / "eest-v5.4.0-cancun-prague.tar.gz"
MAINNET = SHARED / "mainnet-blocks.tar.gz"
RPC_TESTS = SHARED / "execution-apis-rpc-tests.tar.gz"
