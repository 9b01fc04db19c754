"""`space-cloud` with uvloop as the event loop: what the recommended one-line change in gateway/cli.py
would give (`bench/run --gateway-uvloop`, `python -m bench.profile --uvloop`).

    python bench/procs/gateway_uvloop.py run --nats URL --config FILE ...
"""

from __future__ import annotations

import sys

import uvloop

from gateway.cli import main

if __name__ == "__main__":
    uvloop.install()
    sys.exit(main(sys.argv[1:]))
