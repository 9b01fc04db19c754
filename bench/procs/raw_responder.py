"""The floor's responder: a bare nats-py subscription answering every request with its own payload.

    python bench/procs/raw_responder.py --nats URL [--subject bench.raw.echo]
"""

from __future__ import annotations

import argparse
import asyncio
import signal

import nats
from nats.aio.msg import Msg

try:
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None  # type: ignore[assignment]


async def main(url: str, subject: str) -> None:
    nc = await nats.connect(url, name="bench-raw-responder", pending_size=8 * 1024 * 1024)

    async def on_request(msg: Msg) -> None:
        await msg.respond(msg.data)

    await nc.subscribe(subject, cb=on_request, pending_msgs_limit=-1)
    await nc.flush()
    print("ready", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await nc.drain()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--nats", required=True)
    p.add_argument("--subject", default="bench.raw.echo")
    a = p.parse_args()
    if uvloop is not None:
        uvloop.install()
    asyncio.run(main(a.nats, a.subject))
