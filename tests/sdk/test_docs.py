"""The quick start of docs/python-client.md runs as written (against the todo example's config)."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

from .conftest import ROOT

DOC = ROOT / "docs" / "python-client.md"


def quick_start() -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert blocks and "asyncio.run(main())" in blocks[0], "the first Python block is the runnable quick start"
    return str(blocks[0])


async def test_the_quick_start_runs(todo_server: tuple[str, Path], todo_service: None, tmp_path: Path) -> None:
    script = tmp_path / "quick_start.py"
    script.write_text(quick_start().replace("http://localhost:4122", todo_server[0]))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = await asyncio.to_thread(subprocess.run, [sys.executable, str(script)], cwd=tmp_path, env=env,
                                capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "1 todos" and lines[1] == "live: initial 1" and lines[2] == "live: update True 1", lines
    assert lines[3] == "All 1 done. Nice work!", lines
