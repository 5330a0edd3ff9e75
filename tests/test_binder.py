"""``binder/`` stays consistent with pyproject.toml, so "launch on Binder" opens working tutorials."""

from __future__ import annotations

import json
import os
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BINDER = ROOT / "binder"


def requirement_map(lines: list[str]) -> dict[str, str]:
    """``{normalised name: specifier}`` of requirement lines."""
    out = {}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.match(r"^([A-Za-z0-9_.\-]+)\s*(.*)$", line)
        assert match, line
        out[re.sub(r"[-_.]+", "-", match.group(1)).lower()] = match.group(2).replace(" ", "")
    return out


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_binder_requirements_pin_the_package_dependencies_as_pyproject_does() -> None:
    wanted = requirement_map(pyproject()["project"]["dependencies"])
    binder = requirement_map((BINDER / "requirements.txt").read_text().splitlines())

    assert {name: binder.get(name) for name in wanted} == wanted
    assert "jupyterlab" in binder  # the tutorials open in JupyterLab
    assert set(binder) - set(wanted) <= {"jupyterlab", "ipykernel"}


def test_postbuild_installs_the_package_and_opens_the_tutorials() -> None:
    post_build = BINDER / "postBuild"
    text = post_build.read_text()

    assert os.access(post_build, os.X_OK)
    assert text.startswith("#!/usr/bin/env bash")
    assert re.search(r"^python -m pip install --no-deps \.$", text, re.M)
    (target,) = re.findall(r'default_url = "/lab/tree/([^"]+)"', text)
    assert (ROOT / target).is_file()


def test_binder_python_satisfies_requires_python() -> None:
    runtime = (BINDER / "runtime.txt").read_text().strip()
    minimum = pyproject()["project"]["requires-python"].removeprefix(">=")

    version = runtime.removeprefix("python-")
    assert tuple(map(int, version.split("."))) >= tuple(map(int, minimum.split(".")))


def test_tutorial_notebooks_name_their_kernel_and_carry_no_outputs() -> None:
    books = sorted((ROOT / "notebooks").glob("*.ipynb"))
    assert [b.name for b in books] == [
        "01-quickstart.ipynb",
        "02-approvals.ipynb",
        "03-recovery.ipynb",
        "04-analysis.ipynb",
        "05-policy.ipynb",
        "06-iterate.ipynb",
    ]
    for book in books:
        data = json.loads(book.read_text())
        assert data["metadata"]["kernelspec"]["name"] == "python3", book.name
        assert all(not c.get("outputs") for c in data["cells"] if c["cell_type"] == "code"), book.name
