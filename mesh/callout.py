"""The embedded server's auth callout: it decides, connection by connection, what a service may do.

nats-server hands every connection that is not one of its configured users (gateway, worker, this
callout) to `$SYS.REQ.USER.AUTH`. A service connects with its name as the user and the service
password of the dev-state file; the answer is a user JWT with that service's permissions
(`roles.service(name)`), so an instance of `todo` listens to `todo`'s functions only, whatever
it asks for. Anything else is refused at once, with a reason in the server's log.

Requests arrive on a subject only this connection may read, from the server itself, so their
signature is not checked again here.
"""

from __future__ import annotations

import hmac
import logging
import time
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg

from . import natsjwt, roles, subjects
from .connect import NatsTarget, connect, disconnect, settle

log = logging.getLogger("space_cloud.auth")

GLOBAL_ACCOUNT = "$G"
"""The account every connection of a server without accounts lives in."""


class AuthCallout:
    def __init__(self, target: NatsTarget, *, issuer: natsjwt.KeyPair, service_password: str,
                 account: str = GLOBAL_ACCOUNT, ttl: float | None = None) -> None:
        """`ttl`: how long an issued user stays valid (None: as long as its connection)."""
        self._target = target
        self._issuer = issuer
        self._password = service_password.encode()
        self._account = account
        self._ttl = ttl
        self._nc: Client | None = None

    async def start(self) -> None:
        if self._nc is not None:
            return
        self._nc = await connect(self._target, name="space-cloud-auth")
        await self._nc.subscribe(roles.AUTH_CALLOUT_SUBJECT, cb=self._on_request)
        await settle(self._nc)  # the server has it before anyone else connects

    async def stop(self) -> None:
        nc, self._nc = self._nc, None
        await disconnect(nc)

    def decide(self, request: dict[str, Any]) -> tuple[str | None, str | None]:
        """(service name, None) when the connection may be that service, else (None, reason)."""
        opts = request.get("connect_opts") or {}
        user, password = opts.get("user"), opts.get("pass")
        if not isinstance(user, str) or not isinstance(password, str):
            return None, "no service name and password"
        if not hmac.compare_digest(password.encode(), self._password):
            return None, f"wrong password for service {user!r}"
        if not subjects.NAME_RE.match(user):
            return None, f"invalid service name {user!r}"
        return user, None

    def answer(self, token: str) -> str | None:
        """The signed answer to one authorization request (a JWT), None if it cannot be read."""
        try:
            request = natsjwt.decode_unverified(token).get("nats") or {}
            user_key = str(request["user_nkey"])
            server_id = str(request["server_id"]["id"])
        except (ValueError, KeyError, TypeError):
            log.warning("unreadable authorization request")
            return None
        name, reason = self.decide(request)
        if name is None:
            log.warning("refused a NATS connection: %s", reason)
            return natsjwt.authorization_response(user_key=user_key, server_id=server_id, issuer=self._issuer,
                                                  error=reason)
        expires = int(time.time() + self._ttl) if self._ttl else None
        jwt = natsjwt.user_jwt(user_key=user_key, name=name, account=self._account,
                               permissions=roles.service(name).jwt(), issuer=self._issuer, expires=expires)
        return natsjwt.authorization_response(user_key=user_key, server_id=server_id, issuer=self._issuer, jwt=jwt)

    async def _on_request(self, msg: Msg) -> None:
        reply = self.answer(msg.data.decode(errors="replace"))
        if reply is not None and msg.reply:
            await msg.respond(reply.encode())
