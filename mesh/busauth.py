"""The embedded bus's generated credentials, and the nats-server `authorization` block made from them.

One nkey per internal role (gateway, worker, the auth callout): the server's config holds only their
public keys, the seeds stay in the memory of `space-cloud run`. Services share one generated
password, checked by the auth callout (`mesh.callout`), which gives each connection the permissions
of the service it names; that password is what the dev-state file hands to services on this machine.
Everything is new on every start.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from . import natsjwt, roles
from .connect import NatsTarget

AUTH_TIMEOUT_S = 5
"""How long the server waits for a connection to authenticate (the callout's answer included)."""


@dataclass(frozen=True)
class BusAuth:
    gateway: natsjwt.KeyPair
    worker: natsjwt.KeyPair
    auth: natsjwt.KeyPair
    issuer: natsjwt.KeyPair
    """The account key that signs the callout's answers (the server trusts its public key)."""
    service_password: str

    @classmethod
    def generate(cls) -> BusAuth:
        return cls(gateway=natsjwt.new_user(), worker=natsjwt.new_user(), auth=natsjwt.new_user(),
                   issuer=natsjwt.new_account(), service_password=secrets.token_urlsafe(32))

    def authorization(self) -> dict[str, Any]:
        """The `authorization` block of the server's config."""
        internal = ((self.gateway, roles.gateway()), (self.worker, roles.worker()), (self.auth, roles.auth()))
        return {
            "timeout": AUTH_TIMEOUT_S,
            "users": [{"nkey": key.public, "permissions": perms.server_config()} for key, perms in internal],
            "auth_callout": {"issuer": self.issuer.public, "auth_users": [key.public for key, _ in internal]},
        }

    def gateway_target(self, url: str) -> NatsTarget:
        return NatsTarget(url, nkey_seed=self.gateway.seed, inbox_prefix=roles.gateway().inbox)

    def worker_target(self, url: str) -> NatsTarget:
        return NatsTarget(url, nkey_seed=self.worker.seed, inbox_prefix=roles.worker().inbox)

    def auth_target(self, url: str) -> NatsTarget:
        return NatsTarget(url, nkey_seed=self.auth.seed)

    def service_target(self, url: str, service: str) -> NatsTarget:
        return service_target(url, service, self.service_password)

    def __repr__(self) -> str:  # never print secrets
        return f"BusAuth(gateway={self.gateway.public}, worker={self.worker.public}, auth={self.auth.public})"


def service_target(url: str, service: str, password: str) -> NatsTarget:
    """How an instance of `service` connects to an embedded bus: its name and the service password."""
    return NatsTarget(url, user=service, password=password, inbox_prefix=roles.service(service).inbox)
