"""Starting real servers for the tests: a free port, a child process group, readiness by polling.

Every server runs in its own process session and is killed with its group,
so no test leaves a Jupyter server (or a hub and its proxy) behind.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def jupyter_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a child server: this checkout first on the path, config dirs of its own."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    for var in ("AIRT_DB", "AIRT_USER", "AIRT_WEBHOOK_URL", "AIRT_WEBHOOK_SECRET", "AIRT_POLICY", "AIRT_PUBLIC_URL"):
        env.pop(var, None)
    for var in [v for v in env if v.startswith("JUPYTERHUB_")]:
        env.pop(var)
    env.update(
        JUPYTER_CONFIG_DIR=str(home / "config"),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
        JUPYTER_DATA_DIR=str(home / "data"),
        IPYTHONDIR=str(home / "ipython"),
    )
    env.update(extra)
    return env


@contextmanager
def server_process(
    command: Sequence[str],
    *,
    env: dict[str, str],
    cwd: Path,
    log: Path,
    ready: Callable[[], bool],
    timeout: float = 60,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``command`` until the block ends; wait until ``ready()`` holds first."""
    with log.open("wb") as out:
        proc = subprocess.Popen(command, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if ready():
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"{command[:4]} did not start; its log ({log}):\n{log.read_text()[-4000:]}")
            time.sleep(0.2)
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def stop(proc: subprocess.Popen[bytes], timeout: float = 20) -> int:
    """Stop a server as a service manager does (SIGTERM) and return its exit status."""
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout)
