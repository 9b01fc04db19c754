"""Password hashing with argon2id, off the event loop and fairly shared, plus slowing down repeated failures.

Fairness: hashing for sign-up (and password changes) and verifying for sign-in run in separate lanes,
so a flood of sign-ups never starves sign-in; each lane has a bounded queue and each client a bounded
number of hashes in flight, beyond which the answer is a prompt 429 instead of an ever longer wait.
Back-off after failed sign-ins is per (client, account), so nobody can lock a victim out from elsewhere.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, OrderedDict

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from common.errors import TooManyAttempts

DUMMY_PASSWORD = "not-a-password"  # noqa: S105 (verified against on unknown accounts, so timing tells nothing)


class _Lane:
    def __init__(self, slots: int, max_waiting: int) -> None:
        self._slots = asyncio.Semaphore(slots)
        self._max_waiting = max_waiting
        self.waiting = 0

    async def run(self, fn: object, *args: str) -> object:
        if self.waiting >= self._max_waiting:
            raise TooManyAttempts("the server is busy with other sign-ins: retry in a moment")
        self.waiting += 1
        try:
            async with self._slots:
                return await asyncio.to_thread(fn, *args)  # type: ignore[arg-type]
        finally:
            self.waiting -= 1


class Passwords:
    """argon2id in worker threads: `hash` (sign-up, password change) and `verify` (sign-in) in their own lanes."""

    def __init__(self, *, verify_slots: int = 2, hash_slots: int = 1, max_waiting: int = 64, per_client: int = 4,
                 hasher: PasswordHasher | None = None) -> None:
        self._hasher = hasher or PasswordHasher()
        self._verify = _Lane(verify_slots, max_waiting)
        self._hash = _Lane(hash_slots, max_waiting)
        self._per_client = per_client
        self._in_flight: Counter[str] = Counter()
        self._dummy: str | None = None

    def _enter(self, client: str) -> None:
        if client and self._in_flight[client] >= self._per_client:
            raise TooManyAttempts("too many sign-ins in progress from this client: wait for them to finish")
        self._in_flight[client] += 1

    def _leave(self, client: str) -> None:
        self._in_flight[client] -= 1
        if self._in_flight[client] <= 0:
            del self._in_flight[client]

    async def hash(self, password: str, *, client: str = "") -> str:
        self._enter(client)
        try:
            return str(await self._hash.run(self._hasher.hash, password))
        finally:
            self._leave(client)

    async def verify(self, stored: str | None, password: str, *, client: str = "") -> bool:
        """True if `password` matches `stored`; with no stored hash a dummy one is checked (same cost, False)."""
        self._enter(client)
        try:
            ok = bool(await self._verify.run(self._check, stored or "", password))
        finally:
            self._leave(client)
        return ok and stored is not None

    def _check(self, stored: str, password: str) -> bool:
        if not stored:  # no such account: the same argon2 work against a hash made once
            if self._dummy is None:
                self._dummy = self._hasher.hash(DUMMY_PASSWORD)
            stored = self._dummy
        try:
            return bool(self._hasher.verify(stored, password))
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False


class FailedSignIns:
    """Back-off per (client, account): after `free` failures, each further attempt waits 2^(n-free) s (capped).

    Keyed by the client too, so failures made by someone else never lock an account's owner out.
    Each client also has a budget of failures over all accounts (`per_client_free`), so guessing across
    many accounts from one client is slowed the same way."""

    def __init__(self, *, free: int = 3, per_client_free: int = 20, max_wait: float = 300.0,
                 capacity: int = 100_000) -> None:
        self._free = free
        self._per_client_free = per_client_free
        self._max_wait = max_wait
        self._capacity = capacity
        self._failures: OrderedDict[str, tuple[int, float]] = OrderedDict()

    def _wait(self, key: str, free: int) -> float:
        entry = self._failures.get(key)
        if entry is None or entry[0] < free:
            return 0.0
        count, last = entry
        return last + min(2.0 ** (count - free), self._max_wait) - time.monotonic()

    def check(self, account: str, client: str = "") -> None:
        remaining = max(self._wait(f"{client}\x00{account}", self._free),
                        self._wait(f"{client}\x00*", self._per_client_free) if client else 0.0)
        if remaining > 0:
            raise TooManyAttempts(f"too many failed sign-ins: retry in {remaining:.0f}s")

    def _bump(self, key: str) -> None:
        count, _ = self._failures.pop(key, (0, 0.0))
        self._failures[key] = (count + 1, time.monotonic())
        while len(self._failures) > self._capacity:
            self._failures.popitem(last=False)

    def failed(self, account: str, client: str = "") -> None:
        self._bump(f"{client}\x00{account}")
        if client:
            self._bump(f"{client}\x00*")

    def succeeded(self, account: str, client: str = "") -> None:
        self._failures.pop(f"{client}\x00{account}", None)
