"""Password hashing with argon2id, off the event loop and capped, plus slowing down repeated failures."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from common.errors import TooManyAttempts


class Passwords:
    """argon2id hashing in worker threads; at most `max_parallel` hashes at once so a burst of
    sign-ins queues instead of starving the event loop and the machine."""

    def __init__(self, *, max_parallel: int = 2, hasher: PasswordHasher | None = None) -> None:
        self._hasher = hasher or PasswordHasher()
        self._slots = asyncio.Semaphore(max_parallel)

    async def hash(self, password: str) -> str:
        async with self._slots:
            return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, stored: str, password: str) -> bool:
        async with self._slots:
            return await asyncio.to_thread(self._verify, stored, password)

    def _verify(self, stored: str, password: str) -> bool:
        try:
            return bool(self._hasher.verify(stored, password))
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False


class FailedSignIns:
    """Per-email back-off: after `free` failures, each further attempt must wait 2^(n-free) s (capped)."""

    def __init__(self, *, free: int = 3, max_wait: float = 300.0, capacity: int = 100_000) -> None:
        self._free = free
        self._max_wait = max_wait
        self._capacity = capacity
        self._failures: OrderedDict[str, tuple[int, float]] = OrderedDict()

    def check(self, email: str) -> None:
        entry = self._failures.get(email)
        if entry is None:
            return
        count, last = entry
        if count < self._free:
            return
        wait = min(2.0 ** (count - self._free), self._max_wait)
        remaining = last + wait - time.monotonic()
        if remaining > 0:
            raise TooManyAttempts(f"too many failed sign-ins for this email: retry in {remaining:.0f}s")

    def failed(self, email: str) -> None:
        count, _ = self._failures.pop(email, (0, 0.0))
        self._failures[email] = (count + 1, time.monotonic())
        while len(self._failures) > self._capacity:
            self._failures.popitem(last=False)

    def succeeded(self, email: str) -> None:
        self._failures.pop(email, None)
