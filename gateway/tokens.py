"""User tokens: JWT HS256 signed with the project secret, the algorithm pinned on decode.

Every token failure is one opaque 401, so a caller learns nothing about why a forged token failed.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import jwt
from jwt.warnings import InsecureKeyLengthWarning

from common.errors import Unauthorized

# Short secrets are reported once, at config load (gateway.config), not on every token.
warnings.filterwarnings("ignore", category=InsecureKeyLengthWarning)

ALGORITHM = "HS256"
INVALID = "Auth: invalid or expired token"


def issue(claims: dict[str, Any], *, secret: str, project: str, ttl: int) -> str:
    now = int(time.time())
    payload = {**claims, "project": project, "iat": now, "exp": now + ttl}
    return jwt.encode(payload, secret, algorithm=ALGORITHM)


def verify(token: str, *, secret: str, project: str, require_exp: bool = True) -> dict[str, Any]:
    """Claims of a valid token for `project`; `Unauthorized` otherwise.

    A token must expire (`exp`) unless `require_exp` is off (the project's `allowTokensWithoutExpiry`,
    for tokens Space Cloud issued); one that names another project is refused.
    """
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM], options={"require": ["exp"] if require_exp else []})
    except jwt.PyJWTError:
        raise Unauthorized(INVALID) from None
    if not isinstance(claims, dict):
        raise Unauthorized(INVALID)
    if "project" in claims and claims["project"] != project:
        raise Unauthorized(INVALID)
    return claims


ADMIN_TTL = 12 * 3600
ADMIN_REQUIRED = "admin token required: log in at /v1/api/config/login"


def issue_admin(user: str, *, secret: str, ttl: int = ADMIN_TTL) -> str:
    """An admin session token (Mission Control, the config API), signed with the admin secret."""
    now = int(time.time())
    return jwt.encode({"id": user, "role": "admin", "iat": now, "exp": now + ttl}, secret, algorithm=ALGORITHM)


def verify_admin(token: str | None, *, secret: str) -> dict[str, Any]:
    """Claims of a valid, unexpired admin token; `Unauthorized` otherwise."""
    if not token:
        raise Unauthorized(ADMIN_REQUIRED)
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM], options={"require": ["exp"]})
    except jwt.PyJWTError:
        raise Unauthorized(ADMIN_REQUIRED) from None
    if not isinstance(claims, dict) or claims.get("role") != "admin":
        raise Unauthorized(ADMIN_REQUIRED)
    return claims
