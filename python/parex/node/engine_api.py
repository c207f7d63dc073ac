"""
The Engine API endpoint (authrpc, default 127.0.0.1:8551), behind JWT authentication.

Every request must carry ``Authorization: Bearer <token>``: an HS256 JWT signed with the
32-byte secret of ``--jwt-secret`` (hex; created with a random secret when the file does not
exist, as geth and reth do), whose ``iat`` claim is within 60 seconds of the node's clock.
Anything else is refused with HTTP 401 before the body is read.
"""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path
from typing import Any

import jwt
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .chain import Chain
from .mempool import Mempool

IAT_WINDOW_SECONDS = 60
CAPABILITIES = ["engine_exchangeCapabilities", "txpoolExt_getTxs"]


class JwtError(ValueError):
    pass


def load_jwt_secret(path: Path) -> bytes:
    """Reads the hex secret at ``path``, writing a fresh random one when the file is absent."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    text = path.read_text().strip()
    if text.startswith(("0x", "0X")):
        text = text[2:]
    try:
        secret = bytes.fromhex(text)
    except ValueError:
        raise JwtError(f"JWT secret file {path} is not hex") from None
    if len(secret) != 32:
        raise JwtError(f"JWT secret file {path} holds {len(secret)} bytes; expected 32")
    return secret


def check_token(header: str | None, secret: bytes, now: float | None = None) -> None:
    """Raises ``JwtError`` unless ``header`` is a valid ``Bearer`` HS256 token."""
    if not header or not header.startswith("Bearer "):
        raise JwtError("missing bearer token")
    token = header[len("Bearer ") :].strip()
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            options={"verify_exp": True, "verify_iat": False, "require": ["iat"]},
        )
    except jwt.PyJWTError as e:
        raise JwtError(f"invalid token: {e}") from None
    iat = claims.get("iat")
    if not isinstance(iat, (int, float)) or isinstance(iat, bool):
        raise JwtError("invalid token: iat is not a number")
    current = time.time() if now is None else now
    if abs(current - iat) > IAT_WINDOW_SECONDS:
        raise JwtError(f"stale token: iat {int(iat)} is more than {IAT_WINDOW_SECONDS}s from now")


def engine_app(chain: Chain, mempool: Mempool, secret_path: Path) -> Starlette:
    secret = load_jwt_secret(secret_path)

    def dispatch(request: dict[str, Any]) -> dict[str, Any]:
        method = request.get("method")
        params = request.get("params") or []
        request_id = request.get("id")
        if method == "engine_exchangeCapabilities":
            return {"jsonrpc": "2.0", "id": request_id, "result": CAPABILITIES}
        if method == "txpoolExt_getTxs":
            return {
                "jsonrpc": "2.0",
                "id": request_id,
                "result": ["0x" + t.raw.hex() for t in mempool.pending()],
            }
        if method == "eth_chainId":
            return {"jsonrpc": "2.0", "id": request_id, "result": hex(chain.chain_id)}
        del params
        return {
            "jsonrpc": "2.0",
            "id": request_id,
            "error": {"code": -32601, "message": f"the method {method} does not exist/is not available"},
        }

    async def endpoint(request: Request) -> Response:
        try:
            check_token(request.headers.get("authorization"), secret)
        except JwtError as e:
            return JSONResponse({"jsonrpc": "2.0", "id": None, "error": {"code": -32000, "message": str(e)}}, status_code=401)
        try:
            payload = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            return JSONResponse({"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": f"parse error: {e}"}})
        if isinstance(payload, list):
            return JSONResponse([dispatch(p) if isinstance(p, dict) else _bad() for p in payload])
        if not isinstance(payload, dict):
            return JSONResponse(_bad())
        return JSONResponse(dispatch(payload))

    return Starlette(routes=[Route("/", endpoint, methods=["POST"])])


def _bad() -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "invalid request"}}
