"""The tutorials, executed for the site: run each notebook in a real kernel and keep its outputs.

A tutorial page shows what the notebook prints *today*: the build executes
``notebooks/*.ipynb`` (each in its own kernel and temporary folder, two at a
time) and renders the executed copy.  An executed copy is cached under
``build/docs-cache/`` by a key made of the notebook's text, every source file
of the package and the versions of what renders the outputs, so a build
after any change to either runs the notebooks again, and a build with
nothing changed takes no time.

Panels are widgets, and a widget needs its kernel: the site shows each
panel's static snapshot (the HTML output the package displays right after
every live panel, see ``airt_nb.magics.display_panel``) and drops the live
view.  A live view without a snapshot after it is reported, since the page
would show nothing in its place.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
#: bump to run every notebook again after a change to how they are executed or cleaned
RECIPE = "3"
TIMEOUT = 120  # seconds per cell


class NotebookFailed(Exception):
    """A tutorial cell raised: the site would show a broken tutorial."""


def cache_key(notebook: Path, package: Path) -> str:
    digest = hashlib.sha256(RECIPE.encode())
    digest.update(notebook.read_bytes())
    for path in sorted(package.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(package)).encode())
            digest.update(path.read_bytes())
    for dist in ("ipykernel", "ipywidgets", "pandas", "nbclient"):
        try:
            digest.update(f"{dist}={metadata.version(dist)}".encode())
        except metadata.PackageNotFoundError:
            pass
    digest.update(sys.version.encode())
    return digest.hexdigest()[:20]


def executed(notebooks: list[Path], package: Path, cache: Path) -> tuple[dict[str, Path], list[str]]:
    """``{notebook name: executed copy}`` and the problems found, running only what the cache lacks."""
    cache.mkdir(parents=True, exist_ok=True)
    wanted = {nb.name: cache / f"{nb.stem}-{cache_key(nb, package)}.ipynb" for nb in notebooks}
    todo = [nb for nb in notebooks if not wanted[nb.name].is_file()]
    problems: list[str] = []
    if todo:
        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
            futures = {pool.submit(_execute, nb): nb for nb in todo}
            for future in concurrent.futures.as_completed(futures):
                nb = futures[future]
                try:
                    data = future.result()
                except NotebookFailed as exc:
                    raise NotebookFailed(f"tutorial {nb.name}: {exc}") from None
                problems += [f"tutorial {nb.name}: {p}" for p in snapshot_problems(data)]
                _write_atomically(wanted[nb.name], strip_live_views(data))
        for stale in cache.glob("*.ipynb"):
            if stale not in wanted.values():
                stale.unlink()
    return wanted, problems


def _execute(path: Path) -> dict[str, Any]:
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory(prefix="airt-docs-") as workdir:
        client = NotebookClient(nb, timeout=TIMEOUT, kernel_name="python3", allow_errors=False)
        # The notebooks pick their own folders and databases; the kernel starts in a temporary one
        # all the same, so that nothing a tutorial writes can land in the source tree.
        env = {**os.environ, "AIRT_DB": os.path.join(workdir, "airt.db")}
        try:
            client.execute(cwd=workdir, env=env)
        except CellExecutionError as exc:
            raise NotebookFailed(str(exc).strip().splitlines()[-1]) from None
    return json.loads(nbformat.writes(nb))


def snapshot_problems(nb: dict[str, Any]) -> list[str]:
    """Live views with no static snapshot right after them (they would show as nothing)."""
    problems = []
    for number, cell in enumerate(nb["cells"], start=1):
        outputs = cell.get("outputs", [])
        for i, out in enumerate(outputs):
            if WIDGET_VIEW in out.get("data", {}) and not _is_snapshot(
                outputs[i + 1] if i + 1 < len(outputs) else None
            ):
                problems.append(f"cell {number} displays a widget with no static snapshot after it")
    return problems


def _is_snapshot(out: dict[str, Any] | None) -> bool:
    html = (out or {}).get("data", {}).get("text/html", "")
    return "airt-snapshot" in ("".join(html) if isinstance(html, list) else html)


def strip_live_views(nb: dict[str, Any]) -> dict[str, Any]:
    """The notebook as the site shows it: snapshots kept, live views and widget state dropped."""
    for cell in nb["cells"]:
        if "outputs" in cell:
            cell["outputs"] = [out for out in cell["outputs"] if WIDGET_VIEW not in out.get("data", {})]
    nb.get("metadata", {}).pop("widgets", None)
    return nb


def _write_atomically(path: Path, nb: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(nb, indent=1), encoding="utf-8")
    tmp.replace(path)
