"""`Bulkhead` and `Breaker`: the two decisions behind every limit and fast failure."""

from __future__ import annotations

import asyncio
import time

import pytest

from mesh.limits import CLOSED, HALF_OPEN, OPEN, Breaker, Bulkhead


async def test_bulkhead_runs_its_limit_queues_in_order_and_refuses_beyond() -> None:
    b = Bulkhead(2, queue=2)
    assert b.try_enter() and await b.enter()
    order: list[int] = []

    async def wait(n: int) -> None:
        assert await b.enter()
        order.append(n)

    waiters = [asyncio.create_task(wait(n)) for n in (1, 2)]
    await asyncio.sleep(0)
    assert (b.running, b.waiting) == (2, 2)
    assert not await b.enter() and b.rejected == 1
    b.leave()
    b.leave()
    await asyncio.gather(*waiters)
    assert order == [1, 2] and (b.running, b.waiting) == (2, 0)
    b.leave()
    b.leave()
    assert b.running == 0


async def test_a_waiter_whose_deadline_passes_leaves_the_queue() -> None:
    b = Bulkhead(1, queue=1)
    assert b.try_enter()
    with pytest.raises(TimeoutError):
        await b.enter(time.monotonic() + 0.02)
    assert b.waiting == 0
    b.leave()
    assert b.running == 0 and b.try_enter()


async def test_a_cancelled_waiter_that_was_handed_a_turn_passes_it_on() -> None:
    b = Bulkhead(1, queue=2)
    assert b.try_enter()
    first = asyncio.create_task(b.enter())
    second = asyncio.create_task(b.enter())
    await asyncio.sleep(0)
    b.leave()  # the turn goes to `first` ...
    first.cancel()  # ... which gives up before it runs
    assert await second
    assert (b.running, b.waiting) == (1, 0)


def test_breaker_opens_after_failures_in_a_row_probes_once_and_closes_on_success() -> None:
    br = Breaker(threshold=3, cooldown=0.05, max_cooldown=0.2)
    br.failure("x")
    br.success()
    br.failure("a")
    br.failure("b")
    assert br.state == CLOSED and br.allow()
    br.failure("boom")
    assert br.state == OPEN and not br.allow()
    assert "3 failures in a row, last: boom" in br.describe() and "failing since" in br.describe()
    time.sleep(0.06)
    assert br.allow() and br.state == HALF_OPEN
    assert not br.allow(), "one probe at a time"
    br.failure("still")
    assert br.state == OPEN and br.retry_at - time.monotonic() > 0.06, "the cooldown doubled"
    time.sleep(0.11)
    assert br.allow()
    br.success()
    assert br.state == CLOSED and br.failures == 0 and br.trips == 2


def test_trip_opens_at_once() -> None:
    br = Breaker(threshold=5, cooldown=1)
    br.trip("connect refused")
    assert br.state == OPEN and br.last_error == "connect refused"


def test_a_windowed_breaker_ignores_one_bad_instance_of_two_and_opens_when_all_fail() -> None:
    br = Breaker(threshold=9, window=10, cooldown=1)
    for n in range(200):  # every other call fails: half the instances are bad
        if n % 2:
            br.failure("bad instance")
        else:
            br.success()
    assert br.state == CLOSED and br.failures == 5
    opened_after = 0
    while br.state == CLOSED:
        br.failure("all bad")
        opened_after += 1
    assert opened_after == 7, "with 2 failures among the last 3, 7 more make 9 of 10"
    assert "9 of the last 10 calls failed, last: all bad" in br.describe()
