"""Every bad input is refused cleanly: the right AirtError, a message naming the problem, nothing written.

One table of cases.  Each is run against a fresh database under tmp_path;
after the refusal the workflow tables must be empty and the folder must
hold nothing but the database.  The risky ones (alias bombs, deep nesting,
huge documents) run in a child process with a memory and CPU limit, so a
regression that expands a bomb or recurses without end fails that one
case instead of taking the test run down.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import airt_nb
from airt_nb import ActionError, AirtError, Engine, PolicyError, SpecError, cli
from airt_nb.limits import check_depth, check_inputs
from airt_nb.policy import parse_policy
from airt_nb.urls import check_webhook_url

ROOT = Path(__file__).resolve().parents[1]
TABLES = ("workflows", "workflow_steps", "compensation_log", "approvals")


def approval(timeout: str) -> str:
    return f"name: w\nsteps:\n  - name: ask\n    type: human_approval\n    timeout: {timeout}\n"


def retry(body: str) -> str:
    return f"name: w\nsteps:\n  - name: a\n    action: wait\n    inputs: {{seconds: 0}}\n    retry: {{{body}}}\n"


def step(action: str, inputs: str) -> str:
    return f"name: w\nsteps:\n  - name: a\n    action: {action}\n    inputs: {inputs}\n"


def value(text: str) -> str:
    return f"name: w\ninputs:\n  x: {text}\nsteps:\n  - name: a\n    action: wait\n    inputs: {{seconds: 0}}\n"


LAUGHS = "".join(
    f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n"
    if i
    else "l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
    for i in range(10)
)
LAUGHS_SPEC = LAUGHS + "name: w\nsteps: []\n"
ONE_STEP = [{"name": "a", "action": "wait", "inputs": {"seconds": 0}}]


@dataclass
class Bad:
    """One bad input: what to do with it, the error expected, and words its message must contain."""

    case: str
    spec: Any = None  # given to Engine.start (YAML text or a dict)
    call: Callable[[Engine], Any] | None = None  # or something else to call
    error: type[AirtError] = SpecError
    words: tuple[str, ...] = ()
    child: str | None = None  # Python source defining `spec` (started in a limited child process)


def _cli(*argv: str) -> Callable[[Engine], Any]:
    def run(engine: Engine) -> None:
        code = cli.main(["--db", str(engine.db), *argv])
        raise AssertionError(f"airt {' '.join(argv)} returned {code} instead of a usage error")

    return run


BAD: list[Bad] = [
    # -- tags: only plain YAML, on scalars, sequences and mappings alike
    Bad("python tuple on a list", value("!!python/tuple [1, 2]"), words=("line 3", "inputs.x", "!!python/tuple")),
    Bad("python object on a map", value("!!python/object:os.system {a: 1}"), words=("!!python/object:os.system",)),
    Bad("python name on a scalar", value("!!python/name:os.system ''"), words=("!!python/name:os.system",)),
    Bad("python apply", value("!!python/object/apply:os.system ['true']"), words=("!!python/object/apply",)),
    Bad("binary, not utf-8", value("!!binary /w=="), words=("!!binary", "not supported")),
    Bad("set", value("!!set {a}"), words=("!!set",)),
    Bad("omap", value("!!omap [{a: 1}]"), words=("!!omap",)),
    Bad("explicit timestamp", value("!!timestamp 2024-01-01"), words=("!!timestamp",)),
    Bad("custom tag", value("!secret x"), words=("!secret", "remove the tag")),
    Bad("tag on a step", "name: w\nsteps:\n  - !!python/object:x {name: a}\n", words=("line 3", "steps[0]")),
    Bad("tag on a key", "name: w\n? !!python/tuple [1]\n: 2\nsteps: []\n", words=("!!python/tuple",)),
    # -- aliases and size
    Bad("recursive alias", value("&a [1, *a]"), words=("*a", "inside the value it names")),
    Bad(
        "too many aliases",
        "name: w\ninputs:\n  one: &o 1\n  x: [" + ", ".join(["*o"] * 101) + "]\nsteps: []\n",
        words=("MAX_YAML_ALIASES",),
    ),
    Bad("undefined alias", value("*nothing"), words=("undefined alias",)),
    Bad("too many steps", {"name": "w", "steps": ONE_STEP * 100_001}, words=("100,001 steps", "MAX_STEPS")),
    # -- scalars that do not convert
    Bad("int of 5000 digits", value("9" * 5000), words=("line 3", "cannot read", "4300 digits")),
    Bad("int tag on text", value("!!int abc"), words=("cannot read 'abc' as !!int",)),
    Bad("bool tag on text", value("!!bool maybe"), words=("as !!bool",)),
    Bad("float tag on text", value("!!float many"), words=("as !!float",)),
    Bad(
        "yaml boolean key", "name: w\ninputs:\n  on: 1\nsteps: []\n", words=("key True is not text (bool)", "quote it")
    ),
    Bad("repeated key", "name: w\nname: v\nsteps: []\n", words=("line 2", "appears twice")),
    Bad("not a mapping", "- just\n- a list\n", words=("a workflow spec is a mapping",)),
    Bad("empty spec", "", words=("got nothing",)),
    Bad("spec of the wrong type", 42, words=("YAML text or a dict, not int",)),
    # -- durations of an approval
    Bad("timeout inf", approval(".inf"), words=("line 5", "steps[0].timeout", "not a finite duration", "366d")),
    Bad("timeout -inf", approval("-.inf"), words=("not a finite duration",)),
    Bad("timeout nan", approval(".nan"), words=("not a finite duration",)),
    Bad("timeout 99999999d", approval("99999999d"), words=("longer than the limit of 366d", "MAX_DURATION")),
    Bad("timeout 367d", approval("367d"), words=("366d",)),
    Bad("timeout negative", approval("-5"), words=("negative", "from 1ms to 366d")),
    Bad("timeout zero", approval("0"), words=("zero",)),
    Bad("timeout boolean", approval("true"), words=("True is not a duration",)),
    Bad("timeout text", approval("soon"), words=("'soon' is not a duration",)),
    Bad("timeout 1e400", approval("1.0e+400"), words=("not a finite duration",)),
    # -- retries and parallelism
    Bad("max_attempts boolean", retry("max_attempts: yes"), words=("retry.max_attempts", "True is not a whole number")),
    Bad("max_attempts zero", retry("max_attempts: 0"), words=("from 1 to 100",)),
    Bad("max_attempts huge", retry("max_attempts: 1000000"), words=("out of range",)),
    Bad("max_attempts fraction", retry("max_attempts: 1.5"), words=("not a whole number",)),
    Bad("initial_delay nan", retry("initial_delay: .nan"), words=("retry.initial_delay", "not a finite duration")),
    Bad("initial_delay negative", retry("initial_delay: -1"), words=("negative", "from 0 to 1d")),
    Bad("max_delay two days", retry("max_delay: 2d"), words=("MAX_RETRY_DELAY",)),
    Bad("max_delay inf", retry("max_delay: .inf"), words=("not a finite duration",)),
    Bad("initial_delay boolean", retry("initial_delay: true"), words=("True is not a duration",)),
    Bad("max_parallel boolean", "name: w\nmax_parallel: true\nsteps: []\n", words=("max_parallel", "True is not")),
    Bad("max_parallel zero", "name: w\nmax_parallel: 0\nsteps: []\n", words=("from 1 to 256",)),
    # -- inputs of built-in actions
    Bad("wait inf", step("wait", "{seconds: .inf}"), words=("steps[0].inputs.seconds", "not a finite duration")),
    Bad("wait negative", step("wait", "{seconds: -1}"), words=("negative",)),
    Bad("wait boolean", step("wait", "{seconds: true}"), words=("True is not a duration",)),
    Bad("wait 400 days", step("wait", "{seconds: 400d}"), words=("MAX_DURATION",)),
    Bad("http timeout inf", step("http.request", "{url: 'http://h/', timeout: .inf}"), words=("not a finite",)),
    Bad("http timeout 2h", step("http.request", "{url: 'http://h/', timeout: 2h}"), words=("MAX_HTTP_TIMEOUT",)),
    Bad("http method", step("http.request", "{url: 'http://h/', method: 'GE T'}"), words=("not an HTTP method",)),
    Bad("http status", step("http.request", "{url: 'http://h/', expect_status: [99]}"), words=("99 is not an HTTP",)),
    Bad("http url without host", step("http.request", "{url: 'http://'}"), words=("names no host",)),
    Bad("http url with CRLF", step("http.request", '{url: "http://h/\\r\\nX: y"}'), words=("line break",)),
    Bad("http undo key", step("http.request", "{url: 'http://h/', undo: {bogus: 1}}"), words=("undo takes no",)),
    Bad("http undo timeout", step("http.request", "{url: 'http://h/', undo: {timeout: x}}"), words=("undo.timeout",)),
    Bad("write encoding", step("file.write", "{path: a.txt, content: x, encoding: nope}"), words=("unknown encoding",)),
    Bad(
        "write binary codec",
        step("file.write", "{path: a.txt, content: x, encoding: base64}"),
        words=("not a text encoding",),
    ),
    Bad("write empty path", step("file.write", "{path: '', content: x}"), words=("must not be empty",)),
    Bad("write NUL in path", step("file.write", '{path: "a\\0b", content: x}'), words=("NUL character",)),
    Bad("write append maybe", step("file.write", "{path: a.txt, content: x, append: maybe}"), words=("append",)),
    Bad("write content nan", step("file.write", "{path: a.txt, content: [.nan]}"), words=("content[0]", "nan")),
    Bad("copy empty source", step("file.copy", "{src: '', dst: b}"), words=("must not be empty",)),
    # -- values in specs
    Bad("input default nan", value(".nan"), words=("inputs.x", "not a JSON number")),
    Bad(
        "input default object",
        {"name": "w", "inputs": {"x": object()}, "steps": ONE_STEP},
        words=("inputs.x", "type object is not JSON"),
    ),
    Bad(
        "input key not text",
        {"name": "w", "inputs": {"x": {1: "a"}}, "steps": ONE_STEP},
        words=("keys must be text",),
    ),
    # -- start(inputs=...) as the engine will check them
    Bad("inputs text", call=lambda e: check_inputs("x"), words=("must be a mapping", "got str")),
    Bad("inputs list", call=lambda e: check_inputs([1, 2]), words=("got list",)),
    Bad("inputs int", call=lambda e: check_inputs(5), words=("got int",)),
    Bad("inputs nan", call=lambda e: check_inputs({"x": float("nan")}), words=("inputs.x", "not a JSON number")),
    Bad("inputs set", call=lambda e: check_inputs({"x": {1}}), words=("type set",)),
    # -- an action's outputs, as the engine will check them
    Bad(
        "outputs 5000 deep",
        call=lambda e: check_depth(_deep(5000), what="outputs of step 'a'", error=ActionError),
        error=ActionError,
        words=("outputs of step 'a'", "MAX_DEPTH"),
    ),
    # -- webhook URLs
    Bad("webhook without host", call=lambda e: check_webhook_url("http://"), error=AirtError, words=("no host",)),
    Bad("webhook bracket", call=lambda e: check_webhook_url("http://[::1"), error=AirtError, words=("IPv6",)),
    Bad("webhook CRLF", call=lambda e: check_webhook_url("http://h/\r\n"), error=AirtError, words=("CR/LF",)),
    Bad("webhook port", call=lambda e: check_webhook_url("http://h:99999/"), error=AirtError, words=("port",)),
    Bad("webhook port text", call=lambda e: check_webhook_url("http://h:x/"), error=AirtError, words=("port",)),
    Bad("webhook scheme", call=lambda e: check_webhook_url("ftp://h/"), error=AirtError, words=("http://",)),
    Bad("webhook space", call=lambda e: check_webhook_url("http://h /"), error=AirtError, words=("' '",)),
    Bad("webhook empty host", call=lambda e: check_webhook_url("https:///x"), error=AirtError, words=("no host",)),
    # -- policy files share the YAML rules
    Bad(
        "policy tag",
        call=lambda e: parse_policy("roles: !!python/object:x {}"),
        error=PolicyError,
        words=("!!python/object:x",),
    ),
    Bad(
        "policy alias bomb",
        call=lambda e: parse_policy(LAUGHS.replace("l", "x") + "roles: {}\n"),
        error=PolicyError,
        words=("MAX_SPEC_NODES",),
    ),
]

# Risky: run in a child process with limits.  `spec` is built there from this source.
RISKY: list[Bad] = [
    Bad("billion laughs", child=f"spec = {LAUGHS_SPEC!r}", words=("MAX_SPEC_NODES",)),
    Bad(
        "YAML 5000 deep (flow)",
        child="spec = 'name: w\\ninputs:\\n  x: ' + '[' * 5000 + ']' * 5000",
        words=("MAX_DEPTH",),
    ),
    Bad(
        "YAML 5000 deep (blocks)",
        child="spec = 'name: w\\ninputs:\\n' + ''.join(' ' * i + 'k:\\n' for i in range(2, 1400)) + ' ' * 1400 + 'k: 1\\n'",
        words=("MAX_DEPTH",),
    ),
    Bad(
        "dict spec 5000 deep",
        child="d = 1\nfor _ in range(5000): d = {'x': d}\nspec = {'name': 'w', 'inputs': {'x': d}, 'steps': []}",
        words=("inputs.x.x.x", "MAX_DEPTH"),
    ),
    Bad(
        "dict spec alias bomb",
        child="d = ['lol'] * 10\nfor _ in range(12): d = [d] * 10\nspec = {'name': 'w', 'inputs': {'x': d}, 'steps': []}",
        words=("MAX_SPEC_NODES",),
    ),
    Bad(
        "YAML of 2 MB",
        child="spec = 'name: w\\ndescription: ' + 'x' * 2_000_000 + '\\nsteps: []\\n'",
        words=("MAX_SPEC_CHARS",),
    ),
    Bad(
        "start inputs 5000 deep",
        child="d = 1\nfor _ in range(5000): d = [d]\ninputs = {'x': d}\nfrom airt_nb.limits import check_inputs\n"
        "call = lambda: check_inputs(inputs)",
        words=("inputs.x", "MAX_DEPTH"),
    ),
    Bad(
        "policy 5000 deep",
        child="from airt_nb.policy import parse_policy\ncall = lambda: parse_policy('roles: ' + '[' * 5000)",
        error=PolicyError,
        words=("MAX_DEPTH",),
    ),
]

CLI_BAD = [
    (["list", "--limit", "-5"], "-5 is out of range"),
    (["list", "--limit", "0"], "from 1 to 100,000"),
    (["list", "--limit", "many"], "'many' is not a whole number"),
    (["list", "--limit", "10000000000"], "out of range"),
    (["resume", "abcd", "--timeout", "-1"], "is not a positive duration"),
    (["resume", "abcd", "--timeout", "inf"], "not a finite duration"),
    (["resume", "abcd", "--timeout", "nan"], "not a finite duration"),
    (["show", ""], "is not a workflow or approval id"),
    (["approve", "a b"], "is not a workflow or approval id"),
]


def _deep(n: int) -> Any:
    value: Any = 1
    for _ in range(n):
        value = [value]
    return value


def _rows(db: Path) -> dict[str, int]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
    finally:
        conn.close()


def _assert_nothing_written(engine: Engine, folder: Path) -> None:
    assert _rows(Path(engine.db)) == dict.fromkeys(TABLES, 0)
    left = sorted(p.name for p in folder.iterdir())
    assert left == [n for n in ("airt.db", "airt.db-shm", "airt.db-wal") if n in left], left


def test_the_table_has_at_least_sixty_cases() -> None:
    assert len(BAD) + len(RISKY) + len(CLI_BAD) >= 100
    assert len({b.case for b in BAD + RISKY}) == len(BAD) + len(RISKY)


@pytest.mark.parametrize("bad", BAD, ids=[b.case for b in BAD])
def test_bad_input_is_refused_cleanly(bad: Bad, engine: Engine, tmp_path: Path) -> None:
    call = bad.call or (lambda eng: eng.start(bad.spec))
    with pytest.raises(AirtError) as info:
        call(engine)
    assert type(info.value) is bad.error, f"{type(info.value).__name__}: {info.value}"
    text = str(info.value)
    for word in bad.words:
        assert word in text, text
    _assert_nothing_written(engine, tmp_path)


CHILD = """
import json, resource, sys, traceback
limit = 1536 * 1024 * 1024
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
resource.setrlimit(resource.RLIMIT_CPU, (30, 30))
import airt_nb
from airt_nb import AirtError
db, source = sys.argv[1:3]
scope = {}
exec(source, scope)
eng = airt_nb.Engine(db, user="tester")
try:
    if "call" in scope:
        scope["call"]()
    else:
        eng.start(scope["spec"])
    print(json.dumps({"error": None}))
except AirtError as exc:
    print(json.dumps({"error": type(exc).__name__, "message": str(exc)}))
finally:
    eng.close()
"""


@pytest.mark.parametrize("bad", RISKY, ids=[b.case for b in RISKY])
def test_risky_input_is_refused_in_a_limited_process(bad: Bad, tmp_path: Path) -> None:
    db = tmp_path / "airt.db"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(db), bad.child or ""],
        capture_output=True,
        text=True,
        timeout=90,
        env=env,
        cwd=tmp_path,
    )
    assert out.returncode == 0, f"child died ({out.returncode}): {out.stderr[-2000:]}"
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["error"] == bad.error.__name__, result
    for word in bad.words:
        assert word in result["message"], result["message"]
    assert _rows(db) == dict.fromkeys(TABLES, 0)
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("airt.db")) == []


def test_the_child_limits_are_real(tmp_path: Path) -> None:
    """The child's memory limit is real: an expansion past it dies there, it does not pass or hang."""
    source = "call = lambda: bytearray(4 * 1024 ** 3)"
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path / "airt.db"), source],
        capture_output=True,
        text=True,
        timeout=90,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=tmp_path,
    )
    assert out.returncode != 0
    assert "MemoryError" in out.stderr, out.stderr[-500:]


@pytest.mark.parametrize(("argv", "words"), CLI_BAD, ids=[" ".join(a) for a, _ in CLI_BAD])
def test_bad_command_line_is_a_usage_error(
    argv: list[str], words: str, engine: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        _cli(*argv)(engine)
    assert info.value.code == 2
    assert words in capsys.readouterr().err
    _assert_nothing_written(engine, tmp_path)


def test_a_refused_start_leaves_a_later_good_start_working(engine: Engine) -> None:
    with pytest.raises(SpecError):
        engine.start(approval(".inf"))
    run = engine.start(approval("2h"))
    assert run.wait(timeout=10) == "PAUSED"


def test_dates_stay_text_and_plain_tags_still_work(engine: Engine) -> None:
    spec = airt_nb.load_spec(
        "name: w\ninputs:\n  day: 2024-01-01\n  n: !!str 12\n  eq: =\n"
        "steps:\n  - name: a\n    action: wait\n    inputs: {seconds: 0}\n"
    )
    assert spec.inputs == {"day": "2024-01-01", "n": "12", "eq": "="}


def test_a_spec_given_as_a_file_name_or_path_says_to_pass_the_files_text(tmp_path: Path) -> None:
    with Engine(tmp_path / "airt.db") as eng:
        with pytest.raises(SpecError, match=r"not a path; pass the file's text: pathlib.Path\('deploy.yaml'\)"):
            eng.start(Path("deploy.yaml"))
        with pytest.raises(SpecError, match=r"looks like a file name; pass the file's text: pathlib.Path\('s/d.yml'\)"):
            eng.start("s/d.yml")
        with pytest.raises(SpecError, match=r"got str$"):  # other text is not taken for a file name
            eng.validate("hello")
