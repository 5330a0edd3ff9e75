"""The palette against JupyterLab's own theme files: every pairing of text and background ≥ 4.5:1.

The values are read from the installed JupyterLab (light and dark theme CSS,
and the Material palette its core defines), so a theme that changes a shade
is noticed here; the browser suite measures the rendered page as well.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from airt_nb.views.theme import ON_BADGE, PALETTE, STYLE

LAB = Path(sys.prefix) / "share/jupyter/lab"
THEMES = {"light": "theme-light-extension", "dark": "theme-dark-extension"}


def _declarations(theme: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for core in (LAB / "static").glob("jlab_core*.js"):  # the Material palette (--md-*)
        found.update(re.findall(r"(--md-[a-z-]+-\d+):\s*(#[0-9a-fA-F]{6})", core.read_text(errors="ignore")))
    css = (LAB / "themes/@jupyterlab" / THEMES[theme] / "index.css").read_text()
    found.update((k, v.strip()) for k, v in re.findall(r"(--jp-[a-z0-9-]+):([^;}]+)", css))
    return found


def _rgba(value: str, names: dict[str, str]) -> tuple[float, float, float, float]:
    value = value.strip()
    var = re.fullmatch(r"var\((--[a-z0-9-]+)(?:,\s*(.+))?\)", value)
    if var:
        name, fallback = var.groups()
        return _rgba(names.get(name, fallback), names)
    mix = re.fullmatch(r"color-mix\(in srgb,\s*(.+)\s+(\d+)%,\s*black\)", value)
    if mix:
        r, g, b, a = _rgba(mix.group(1), names)
        share = int(mix.group(2)) / 100
        return r * share, g * share, b * share, a
    if value.startswith("#"):
        digits = value[1:]
        if len(digits) == 3:
            digits = "".join(c * 2 for c in digits)
        return int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16), 1.0
    if value == "white":
        return 255, 255, 255, 1.0
    rgba = re.fullmatch(r"rgba?\(([^)]+)\)", value)
    assert rgba, value
    parts = [float(p) for p in rgba.group(1).split(",")]
    return parts[0], parts[1], parts[2], parts[3] if len(parts) > 3 else 1.0


def _over(top: tuple[float, ...], below: tuple[float, ...]) -> tuple[float, float, float]:
    a = top[3]
    return tuple(top[i] * a + below[i] * (1 - a) for i in range(3))  # type: ignore[return-value]


def _contrast(fg: tuple[float, ...], bg: tuple[float, ...]) -> float:
    def lum(c: tuple[float, ...]) -> float:
        def f(v: float) -> float:
            v /= 255
            return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4

        return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2])

    high, low = sorted((lum(fg), lum(bg)), reverse=True)
    return (high + 0.05) / (low + 0.05)


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_every_text_colour_reaches_4_5_to_1_on_jupyterlabs_backgrounds(theme: str) -> None:
    if not (LAB / "themes").exists():
        pytest.fail(f"JupyterLab's theme files are missing under {LAB}; install the test extras")
    names = _declarations(theme)
    index = 0 if theme == "light" else 1
    panel = _rgba("var(--jp-layout-color1)", names)[:3]
    page = _rgba("var(--jp-layout-color0)", names)[:3]
    failures = []
    for role, values in PALETTE.items():
        colour = _rgba(values[index], names)
        badge_text = _over(_rgba(ON_BADGE[index], names), colour)
        checks = {
            f"badge {role}": _contrast(badge_text, colour),
            f"{role} text on the panel": _contrast(_over(colour, panel), panel),
            f"{role} text on the page": _contrast(_over(colour, page), page),
        }
        failures += [f"{what}: {ratio:.2f}" for what, ratio in checks.items() if ratio < 4.5]
    muted = _over(_rgba("var(--jp-ui-font-color2)", names), panel)
    if _contrast(muted, panel) < 4.5:
        failures.append(f"muted text: {_contrast(muted, panel):.2f}")
    assert failures == []


def test_every_colour_in_the_stylesheet_is_a_theme_variable() -> None:
    # hex colours appear only as fallbacks inside var(...), for where no theme applies (an exported SVG)
    bare = re.findall(r"(?<![,(\s])\s*#[0-9a-fA-F]{3,6}\b", re.sub(r"var\([^()]*\)", "", STYLE))
    assert bare == []
    assert 'body[data-jp-theme-light="false"] .airt-root{' in STYLE
