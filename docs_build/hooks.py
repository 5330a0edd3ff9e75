"""MkDocs hooks of the site: the executed tutorials, and the reference tables generated from the code.

- ``on_files`` executes ``notebooks/*.ipynb`` (or takes them from the cache,
  see :mod:`docs_build.notebooks`) and adds the executed copies as
  ``tutorials/NAME.ipynb``, which mkdocs-jupyter renders.
- ``on_page_markdown`` replaces each ``<!-- generated: NAME -->`` line of a
  page with a table made from the code (:mod:`docs_build.reference`).

Every problem found (a tutorial panel without its snapshot, a column, key,
command or variable without a description, an export without a reference
entry) is logged as a warning, which fails the strict build.
"""

from __future__ import annotations

import logging
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import yaml
from mkdocs.exceptions import PluginError
from mkdocs.plugins import event_priority
from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from docs_build import notebooks, reference, sample  # noqa: E402

log = logging.getLogger("mkdocs.plugins.airt_docs")
MARKER = re.compile(r"^<!-- generated: ([\w-]+) -->$", re.M)
PACKAGE = ROOT / "airt_nb"
CACHE = ROOT / "build" / "docs-cache" / "notebooks"
# The executed copies as a source folder of their own: mkdocs-jupyter needs files that have one.
STAGED = ROOT / "build" / "docs-cache" / "pages"

_frames: dict[str, Any] = {}


def _descriptions() -> dict[str, Any]:
    return yaml.safe_load((ROOT / reference.DESCRIPTIONS).read_text(encoding="utf-8"))


def on_config(config: Any) -> Any:
    _frames.clear()  # `mkdocs serve` rebuilds from a fresh database after a change
    return config


@event_priority(100)  # before mkdocs-jupyter looks for notebooks among the files
def on_files(files: Any, config: Any) -> Any:
    books = sorted((ROOT / "notebooks").glob("*.ipynb"))
    try:
        done, problems = notebooks.executed(books, PACKAGE, CACHE)
    except notebooks.NotebookFailed as exc:
        raise PluginError(str(exc)) from None
    for problem in problems:
        log.warning(problem)
    (STAGED / "tutorials").mkdir(parents=True, exist_ok=True)
    for book in books:
        uri = f"tutorials/{book.name}"
        shutil.copyfile(done[book.name], STAGED / uri)
        files.append(File(uri, str(STAGED), config["site_dir"], config["use_directory_urls"]))
    return files


def _generate(name: str) -> tuple[str, list[str]]:
    meanings = _descriptions()
    if name == "cli":
        return reference.cli_markdown()
    if name == "magics":
        return reference.magics_markdown(meanings["magics"])
    if name == "spec-keys":
        return reference.spec_markdown(meanings["spec"])
    if name == "environment":
        return reference.environment_markdown(meanings["environment"], PACKAGE)
    if name == "frame-columns":
        if not _frames:
            _frames.update(sample.frames())
        return reference.frames_markdown(meanings["columns"], _frames)
    if name == "api-index":
        return reference.api_index_markdown(ROOT / "docs" / "reference")
    raise PluginError(f"unknown generated section {name!r}")


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    def replace(match: re.Match[str]) -> str:
        text, problems = _generate(match.group(1))
        for problem in problems:
            log.warning("%s: %s", page.file.src_uri, problem)
        return text

    return MARKER.sub(replace, markdown)
