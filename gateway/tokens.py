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


def verify(token: str, *, secret: str, project: str) -> dict[str, Any]:
    """Claims of a valid token for `project`; `Unauthorized` otherwise.

    Tokens without `exp` (as Space Cloud issued them) are accepted; one that names another
    project is not.
    """
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM], options={"require": []})
    except jwt.PyJWTError:
        raise Unauthorized(INVALID) from None
    if not isinstance(claims, dict):
        raise Unauthorized(INVALID)
    if "project" in claims and claims["project"] != project:
        raise Unauthorized(INVALID)
    return claims
