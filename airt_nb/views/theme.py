"""The one stylesheet of every airt_nb output: JupyterLab's theme variables, light and dark.

Every colour is a JupyterLab theme variable (``--jp-error-color0``,
``--jp-ui-font-color2``, ...; the Material palette ``--md-*`` for purple and
grey, which the themes do not name), chosen per theme so that text keeps a
contrast of at least 4.5:1: the darker shades on the light theme, the lighter
ones on the dark theme (JupyterLab marks it with
``body[data-jp-theme-light="false"]``).  :data:`PALETTE` lists the choices;
``tests/test_theme.py`` resolves them against JupyterLab's own theme files and
checks the contrast of each pairing.

The stylesheet also pairs a live panel with its static snapshot (see
:mod:`airt_nb.views.run`): while the panel's widget is alive the snapshot
output next to it is hidden; when the widget is gone (a saved notebook
reopened, a restarted kernel, an HTML export) the widget's output is hidden
and the snapshot shows instead.

Imports no IPython, ipywidgets or pandas.
"""

from __future__ import annotations

__all__ = ["FALLBACK", "PALETTE", "ROLE", "STYLE", "colour", "role", "stylesheet"]

#: role -> (light theme value, dark theme value); the value is the background of a badge and the
#: colour of text in that role.  Fallbacks apply where the variable is not defined (an HTML export).
PALETTE: dict[str, tuple[str, str]] = {
    "ok": ("var(--jp-success-color0, #1b5e20)", "var(--jp-success-color2, #81c784)"),
    "error": ("var(--jp-error-color0, #b71c1c)", "var(--jp-error-color2, #e57373)"),
    # the light theme's darkest orange (#e65100) is 3.8:1 on white: darkened a fifth, 5.5:1
    "warn": ("color-mix(in srgb, var(--jp-warn-color0, #e65100) 80%, black)", "var(--jp-warn-color2, #ffb74d)"),
    "run": ("var(--jp-brand-color0, #0d47a1)", "var(--jp-brand-color2, #64b5f6)"),
    "undo": ("var(--md-purple-800, #6a1b9a)", "var(--md-purple-200, #ce93d8)"),
    "idle": ("var(--md-grey-700, #616161)", "var(--md-grey-400, #bdbdbd)"),
    "off": ("var(--md-grey-600, #757575)", "var(--md-grey-500, #9e9e9e)"),
}
#: text on a badge: white on the light theme's dark shades, black on the dark theme's light ones
ON_BADGE = ("var(--jp-ui-inverse-font-color0, #fff)", "var(--jp-ui-inverse-font-color0, #000)")

ROLE: dict[str, str] = {
    "COMPLETED": "ok",
    "APPROVED": "ok",
    "DONE": "ok",
    "DELIVERED": "ok",
    "FAILED": "error",
    "REJECTED": "error",
    "COMPENSATION_FAILED": "error",
    "PAUSED": "warn",
    "WAITING": "warn",
    "RETRYING": "warn",
    "INTERRUPTED": "warn",
    "RUNNING": "run",
    "ROLLING_BACK": "undo",
    "ROLLED_BACK": "undo",
    "COMPENSATED": "undo",
    "PENDING": "off",
    "CANCELLED": "idle",
    "SKIPPED": "idle",
}


#: the light theme's colour of each role where no stylesheet applies (an SVG saved on its own)
FALLBACK = {"ok": "#1b5e20", "error": "#b71c1c", "warn": "#b84100", "run": "#0d47a1", "undo": "#6a1b9a",
            "idle": "#616161", "off": "#757575"}  # fmt: skip


def colour(name: str) -> str:
    """A role's colour as a CSS value: the theme's, or the light theme's where there is no stylesheet."""
    return f"var(--airt-c-{name}, {FALLBACK[name]})"


def role(status: str) -> str:
    """The colour role of a status (``idle`` for one this module does not know)."""
    return ROLE.get(status, "idle")


def _vars(index: int) -> str:
    colours = "".join(f"--airt-c-{name}:{values[index]};" for name, values in PALETTE.items())
    return f"{colours}--airt-on-badge:{ON_BADGE[index]};"


_BADGES = "".join(
    f".airt-root .airt-status-{status}{{background:var(--airt-c-{name})}}" for status, name in ROLE.items()
)
_BARS = "".join(
    f".airt-root .airt-bar-{name} .progress-bar,.airt-root .airt-bar-{name} .airt-bar-fill"
    f"{{background-color:var(--airt-c-{name})!important}}"
    for name in PALETTE
)

STYLE = (
    ".airt-root{"
    "--airt-fg:var(--jp-ui-font-color1,rgba(0,0,0,.87));--airt-muted:var(--jp-ui-font-color2,rgba(0,0,0,.54));"
    "--airt-bg:var(--jp-layout-color1,#fff);--airt-code-bg:var(--jp-layout-color2,#eee);"
    "--airt-border:var(--jp-border-color2,#e0e0e0);--airt-rule:var(--jp-border-color3,#eee);"
    f"{_vars(0)}color:var(--airt-fg)}}"
    f'body[data-jp-theme-light="false"] .airt-root{{{_vars(1)}}}'
    ".airt-root .airt-badge{display:inline-block;color:var(--airt-on-badge);border-radius:9px;padding:0 8px;"
    "font-size:11px;font-weight:600;line-height:17px;white-space:nowrap;background:var(--airt-c-idle)}"
    f"{_BADGES}"
    ".airt-root .airt-muted{color:var(--airt-muted)}"
    ".airt-root .airt-error{color:var(--airt-c-error);white-space:pre-wrap}"
    ".airt-root .airt-notice{color:var(--airt-c-warn);white-space:pre-wrap}"
    ".airt-root .airt-ok{color:var(--airt-c-ok)}"
    ".airt-root .airt-undo{color:var(--airt-c-undo)}"
    ".airt-panel{border:1px solid var(--airt-border);border-radius:6px;padding:6px 10px;margin:2px 0;"
    "background:var(--airt-bg);max-width:1000px;box-sizing:border-box}"
    ".airt-panel .widget-html-content{line-height:1.45}"
    ".airt-root .airt-header{font-size:13px}"
    ".airt-root .airt-facts{font-size:11px}"
    ".airt-root code{font-size:11px}"
    ".airt-root .airt-table{border-collapse:collapse;font-size:12px;width:100%;margin:2px 0}"
    ".airt-root .airt-table th{text-align:left;font-weight:600;color:var(--airt-muted);white-space:nowrap;"
    "border-bottom:1px solid var(--airt-border);padding:2px 10px 2px 0;background:transparent}"
    ".airt-root .airt-table td{text-align:left;padding:2px 10px 2px 0;vertical-align:top;"
    "border-bottom:1px solid var(--airt-rule);background:transparent}"
    ".airt-root .airt-table tr:nth-child(n){background:transparent}"
    ".airt-root .airt-nowrap{white-space:nowrap}"
    ".airt-root details summary{cursor:pointer}"
    ".airt-root pre{margin:2px 0;padding:4px 6px;font-size:11px;white-space:pre-wrap;color:var(--airt-fg);"
    "background:var(--airt-code-bg);border-radius:4px;max-height:260px;overflow:auto;text-align:left}"
    ".airt-root .airt-card{border-left:4px solid var(--airt-c-warn);padding:4px 10px;margin:6px 0;"
    "background:var(--airt-bg);border-top:1px solid var(--airt-rule);border-bottom:1px solid var(--airt-rule)}"
    ".airt-root .airt-card-title{font-weight:600}"
    ".airt-root .airt-card td{padding:1px 8px 1px 0;vertical-align:top;text-align:left}"
    ".airt-root .airt-row{border-bottom:1px solid var(--airt-rule)}"
    ".airt-root .airt-row .widget-html-content{font-size:12px}"
    ".airt-root .airt-row-selected{background:var(--airt-code-bg)}"
    ".airt-root .airt-open button,.airt-root button.airt-open{font-family:var(--jp-code-font-family,monospace);"
    "font-size:11px}"
    ".airt-root .airt-reason textarea{font-size:12px}"
    # the live bar's text is its description: shown after the bar, on one line
    ".airt-root .airt-progress.widget-hprogress{flex-direction:row-reverse;justify-content:flex-end}"
    ".airt-root .airt-progress .progress{flex:0 0 180px}"
    ".airt-root .airt-progress .widget-label{color:var(--airt-muted);margin:0 0 0 8px;white-space:nowrap;"
    "text-align:left;font-size:12px}"
    ".airt-root .airt-progress-text{white-space:nowrap}"
    ".airt-root .airt-bar{display:inline-block;width:180px;height:12px;vertical-align:middle;"
    "background:var(--airt-code-bg);border-radius:2px;overflow:hidden}"
    ".airt-root .airt-bar-fill{height:100%;background:var(--airt-c-run)}"
    f"{_BARS}"
    ".airt-root .airt-stale{border-left:4px solid var(--airt-c-warn);padding:2px 8px;margin:0 0 6px 0;"
    "font-size:12px}"
    ".airt-root .airt-history div{font-size:12px}"
    # An approval's preview: one block per gated step; a diff's lines coloured by role.
    ".airt-root .airt-preview-step{margin:3px 0;padding-left:8px;border-left:2px solid var(--airt-border);"
    "font-size:12px}"
    ".airt-root .airt-hunk{color:var(--airt-c-run)}"
    ".airt-root pre.airt-diff .airt-error{white-space:pre-wrap}"
    ".airt-root .airt-count{font-weight:600}"
    # The YAML of a refused spec: a block that keeps its indentation, the faulty lines marked.
    ".airt-spec-error{border-left:4px solid var(--airt-c-error);padding:4px 10px;margin:2px 0}"
    ".airt-spec-error .airt-spec-title{font-weight:600;color:var(--airt-c-error)}"
    ".airt-root pre.airt-source{background:transparent;padding:2px 0;max-height:none;white-space:pre;"
    "overflow-x:auto;font-size:12px;line-height:1.4}"
    ".airt-source .airt-ln{color:var(--airt-muted);user-select:none}"
    ".airt-source .airt-bad{background:color-mix(in srgb,var(--airt-c-error) 18%,transparent);display:inline-block;"
    "min-width:100%}"
    ".airt-source .airt-note{color:var(--airt-c-error);font-weight:600;white-space:pre-wrap;display:inline-block;"
    "vertical-align:top;max-width:calc(100% - 16ch);word-break:normal;overflow-wrap:break-word}"
    ".airt-root ul.airt-problems{margin:4px 0;padding-left:20px}"
    # A live panel and its snapshot are two outputs, one after the other: show the one that works.
    ".jp-OutputArea-child:has(.airt-live:not(.jupyter-widgets-disconnected))"
    "+.jp-OutputArea-child:has(.airt-snapshot){display:none}"
    ".jp-OutputArea-child:has(+.jp-OutputArea-child .airt-snapshot)"
    ":not(:has(.airt-live:not(.jupyter-widgets-disconnected))){display:none}"
    # A refused spec is shown once, above: the UsageError that stops a "run all" adds nothing.
    ".jp-OutputArea-child:has(.airt-spec-error)"
    '+.jp-OutputArea-child:has([data-mime-type="application/vnd.jupyter.stderr"]){display:none}'
)


def stylesheet() -> str:
    """``<style>`` with :data:`STYLE`: every static view carries it (a saved notebook has no widget CSS)."""
    return f"<style>{STYLE}</style>"
