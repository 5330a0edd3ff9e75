"""Driving JupyterLab like a person: open, run, restart, save, switch theme; and reading what shows.

Shared by the browser tests.  Commands go through ``window.jupyterapp`` and
are not awaited when they resolve late (run-all resolves when every cell has
finished); waits are on what the page shows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from airt_nb.engine import open_store

from .conftest import ARTIFACTS

SPEC = """%%workflow -o run
name: publish-report
inputs:
  target: out/report
steps:
  - name: write_a
    action: file.write
    inputs:
      path: "${{ inputs.target }}/a.txt"
      content: hello
  - name: review
    type: human_approval
    message: "Publish B next to ${{ steps.write_a.outputs.path }}?"
    approvers: [reviewer]
    timeout: 2h
  - name: write_b
    action: file.write
    inputs:
      path: "${{ inputs.target }}/b.txt"
      content: "${{ steps.write_a.outputs.bytes }}"
"""


def open_notebook(page: Any, path: str) -> None:
    page.evaluate(
        "(path) => { window.jupyterapp.commands.execute('docmanager:open', {path, factory: 'Notebook'}); }", path
    )
    page.wait_for_function(
        """(path) => {
            const w = window.jupyterapp.shell.currentWidget;
            const kernel = w && w.context && w.context.path === path && w.sessionContext.session
                && w.sessionContext.session.kernel;
            return kernel && kernel.connectionStatus === 'connected' && kernel.status === 'idle';
        }""",
        arg=path,
        timeout=60_000,
    )


def command(page: Any, name: str, args: dict[str, Any] | None = None) -> None:
    # Not awaited: run-all resolves only when every cell has finished.
    page.evaluate("([name, args]) => { window.jupyterapp.commands.execute(name, args || {}); }", [name, args])


def wait_for_prompts(page: Any, count: int, timeout: float = 60_000) -> None:
    """Wait until the first ``count`` code cells show ``[n]:`` (run and finished)."""
    page.wait_for_function(
        """(count) => {
            const w = window.jupyterapp.shell.currentWidget;
            const prompts = Array.from(w.node.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt'))
                .map(p => p.textContent.trim());
            return prompts.length >= count && prompts.slice(0, count).every(t => /^\\[\\d+\\]:$/.test(t));
        }""",
        arg=count,
        timeout=timeout,
    )


def cell(page: Any, index: int) -> Any:
    return page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell").nth(index)


def live(locator: Any) -> Any:
    """Run panels of the running kernel (views of a dead kernel are marked disconnected)."""
    return locator.locator(".airt-run-panel:not(.jupyter-widgets-disconnected)")


def run_cell(page: Any, index: int) -> None:
    page.evaluate(f"() => {{ window.jupyterapp.shell.currentWidget.content.activeCellIndex = {index}; }}")
    command(page, "notebook:run-cell")


def restart_kernel(page: Any) -> None:
    """Kernel menu → Restart Kernel… → Restart, as a person does."""
    page.locator(".lm-MenuBar-itemLabel", has_text="Kernel").click()
    page.locator(".lm-Menu-itemLabel", has_text="Restart Kernel…").first.click()
    page.locator(".jp-Dialog button.jp-mod-accept").click()


def save(page: Any) -> None:
    page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
    page.wait_for_function("() => !window.jupyterapp.shell.currentWidget.context.model.dirty", timeout=30_000)


def close_all(page: Any) -> None:
    """Close every open document and shut down its kernel (a person closing their notebooks)."""
    page.evaluate(
        """async () => {
            for (const w of Array.from(window.jupyterapp.shell.widgets('main'))) {
                if (w.sessionContext) { await w.sessionContext.shutdown(); }
                if (w.context) { w.context.model.dirty = false; }
                w.dispose();
            }
        }"""
    )


def set_theme(page: Any, theme: str) -> None:
    """``"JupyterLab Dark"`` or ``"JupyterLab Light"``; waits until the page uses it."""
    light = "true" if "Light" in theme else "false"
    command(page, "apputils:change-theme", {"theme": theme})
    page.wait_for_function(f"() => document.body.dataset.jpThemeLight === '{light}'", timeout=30_000)
    page.wait_for_timeout(300)  # the theme's stylesheet applies a moment after the attribute


def workflow_status(folder: Path) -> tuple[str, Any]:
    """The one workflow of the database in ``folder``: its status and first approval."""
    store = open_store(folder / "airt.db")
    try:
        (record,) = store.list_workflows()
        approvals = store.approvals(workflow_id=record.workflow_id)
        return record.status, approvals[0] if approvals else None
    finally:
        store.close()


def screenshot(locator: Any, name: str) -> None:
    locator.screenshot(path=str(ARTIFACTS / f"{name}.png"))


# Text colour against the background actually behind it (semi-transparent layers composited), for
# every text element of our outputs that is shown.  WCAG 2 contrast ratio.
CONTRAST_JS = """(root) => {
    const parse = (c) => {
        let m = c.match(/^color\\(srgb ([^)]+)\\)/);
        if (m) {
            const p = m[1].split(/[ \\/]+/).filter(Boolean).map(Number);
            return [p[0] * 255, p[1] * 255, p[2] * 255, p.length > 3 ? p[3] : 1];
        }
        m = c.match(/rgba?\\(([^)]+)\\)/);
        if (!m) return null;
        const p = m[1].split(/[ ,\\/]+/).filter(Boolean).map(Number);
        return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
    };
    const over = (top, below) => {
        const a = top[3];
        return [0, 1, 2].map(i => top[i] * a + below[i] * (1 - a)).concat([1]);
    };
    const background = (el) => {
        const layers = [];
        for (let e = el; e; e = e.parentElement) {
            const c = parse(getComputedStyle(e).backgroundColor);
            if (c && c[3] > 0) { layers.push(c); if (c[3] >= 1) break; }
        }
        let colour = [255, 255, 255, 1];
        for (const layer of layers.reverse()) colour = over(layer, colour);
        return colour;
    };
    const lum = (c) => {
        const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
        return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]);
    };
    const out = [];
    for (const el of root.querySelectorAll('*')) {
        const own = Array.from(el.childNodes).some(n => n.nodeType === 3 && n.textContent.trim());
        if (!own || !el.getClientRects().length) continue;
        const style = getComputedStyle(el);
        if (style.visibility === 'hidden' || style.display === 'none' || el.closest('svg')) continue;
        if (el.closest('textarea, input, select, .lm-Widget.jupyter-button')) continue;
        const bg = background(el);
        const fg = over(parse(style.color), bg);
        const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x);
        out.push({text: el.textContent.trim().slice(0, 40), cls: el.className.toString().slice(0, 60),
                  ratio: (a + 0.05) / (b + 0.05), color: style.color});
    }
    return out;
}"""


def contrast(page: Any, selector: str) -> list[dict[str, Any]]:
    """Every shown text element under ``selector``: its text, class and contrast ratio."""
    found: list[dict[str, Any]] = []
    for handle in page.locator(selector).element_handles():
        if handle.is_visible():
            found += page.evaluate(CONTRAST_JS, handle)
    return found
