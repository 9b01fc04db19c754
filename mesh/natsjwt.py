"""NATS nkeys and JWTs, as far as the embedded server's auth callout needs them.

An nkey is an ed25519 key in NATS's base32 encoding, its first letter telling its kind (`U` user,
`A` account); a seed (`S…`) holds the private key. A NATS JWT is a standard three-part JWT with
the algorithm `ed25519-nkey`, signed by the issuer's nkey, its NATS-specific claims under `nats`.
"""

from __future__ import annotations

import base64
import hashlib
import os
import time
from dataclasses import dataclass, field
from typing import Any

import nkeys
import orjson

_HEADER = {"typ": "JWT", "alg": "ed25519-nkey"}


@dataclass(frozen=True)
class KeyPair:
    seed: str = field(repr=False)
    public: str = ""

    @classmethod
    def generate(cls, prefix: int) -> KeyPair:
        """A new key of one kind (`nkeys.PREFIX_BYTE_USER`, `nkeys.PREFIX_BYTE_ACCOUNT`)."""
        seed = nkeys.encode_seed(os.urandom(32), prefix)
        return cls(seed=seed.decode(), public=nkeys.from_seed(bytearray(seed)).public_key.decode())

    def sign(self, data: bytes) -> bytes:
        return bytes(nkeys.from_seed(bytearray(self.seed.encode())).sign(data))


def new_user() -> KeyPair:
    return KeyPair.generate(nkeys.PREFIX_BYTE_USER)


def new_account() -> KeyPair:
    return KeyPair.generate(nkeys.PREFIX_BYTE_ACCOUNT)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode(claims: dict[str, Any], issuer: KeyPair) -> str:
    """Sign `claims` (with `sub`, and `nats` holding `type`) as `issuer`; `iss`, `iat`, `jti` are set here."""
    body = {**claims, "iss": issuer.public, "iat": int(time.time())}
    body.pop("jti", None)
    digest = hashlib.sha512(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).digest()[:32]
    body["jti"] = base64.b32encode(digest).rstrip(b"=").decode()
    body["nats"] = {**body.get("nats", {}), "version": 2}
    signing_input = f"{_b64(orjson.dumps(_HEADER))}.{_b64(orjson.dumps(body))}"
    return f"{signing_input}.{_b64(issuer.sign(signing_input.encode()))}"


def decode_unverified(token: str) -> dict[str, Any]:
    """The claims of a JWT whose origin the caller already trusts (it came from our own server)."""
    parts = token.split(".")
    if len(parts) != 3:
        raise ValueError("not a JWT")
    claims = orjson.loads(_unb64(parts[1]))
    if not isinstance(claims, dict):
        raise ValueError("JWT claims are not an object")
    return claims


def user_jwt(*, user_key: str, name: str, account: str, permissions: dict[str, Any], issuer: KeyPair,
             expires: int | None = None) -> str:
    """A user JWT for the connection whose (server-made) key is `user_key`, placed in `account`."""
    nats: dict[str, Any] = {"type": "user", "subs": -1, "data": -1, "payload": -1, **permissions}
    claims: dict[str, Any] = {"sub": user_key, "name": name, "aud": account, "nats": nats}
    if expires is not None:
        claims["exp"] = expires
    return encode(claims, issuer)


def authorization_response(*, user_key: str, server_id: str, issuer: KeyPair, jwt: str | None = None,
                           error: str | None = None) -> str:
    """The auth callout's answer about one connection: its user JWT, or why it is refused."""
    nats: dict[str, Any] = {"type": "authorization_response"}
    if jwt is not None:
        nats["jwt"] = jwt
    else:
        nats["error"] = error or "not authorized"
    return encode({"sub": user_key, "aud": server_id, "nats": nats}, issuer)
