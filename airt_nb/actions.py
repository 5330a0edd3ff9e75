"""Actions: the Python functions steps run, their compensations, and the registry.

``@action`` wraps a function in an :class:`Action` and registers it by name.
Parameters are validated from the type hints with pydantic before the step
runs; outputs must be JSON (checked when the step completes).  A compensation
(``@f.compensate``) is stored as an *intent* (action name + the step's inputs
and outputs) and looked up by name when it is needed, so it survives a crash.

An action that declares a parameter annotated :class:`StepContext` receives
one: the idempotency key ``workflow_id/step_name/attempt`` and a small durable
scratch space (:meth:`StepContext.save`) that survives a crash, which the
built-in file actions use to keep what they overwrite.

Imports no IPython, ipywidgets, pandas or sqlite3.
"""

from __future__ import annotations

import hashlib
import inspect
import threading
import weakref
from collections.abc import Callable, Mapping
from typing import Any, get_type_hints, overload

import pydantic

from .builtin_actions import BUILTINS
from .context import CompensationContext, StepContext, StepInterrupted, absolute_path
from .errors import ActionError

__all__ = [
    "Action",
    "CompensationContext",
    "Registry",
    "StepContext",
    "StepInterrupted",
    "absolute_path",
    "action",
    "default_registry",
]


def _fingerprint(fn: Callable[..., Any]) -> str:
    try:
        source = inspect.getsource(fn)
    except (OSError, TypeError):
        code = getattr(fn, "__code__", None)
        source = repr((code.co_code, code.co_consts)) if code is not None else repr(fn)
    return hashlib.sha256(source.encode()).hexdigest()[:16]


class Action:
    """A registered step function, with its validation model and compensation.

    Calling an ``Action`` calls the function unchanged, so decorated functions
    stay usable as plain Python.

    Examples
    --------
    >>> from airt_nb import action
    >>> @action("greet")
    ... def hello(name: str) -> dict:
    ...     return {"greeting": f"hello {name}"}
    >>> hello, hello.name, hello("ann")
    (<Action 'greet'>, 'greet', {'greeting': 'hello ann'})
    """

    def __init__(self, fn: Callable[..., Any], name: str, *, lazy: bool = False):
        self.fn = fn
        self.name = name
        # An ``async def`` action runs on the engine's own event loop (see aioloop); calling the
        # Action from Python still returns the coroutine, as the function does.
        self.is_async = inspect.iscoroutinefunction(fn)
        self.compensation: Callable[..., Any] | None = None
        self._compensation_takes_ctx = False
        self._compensation_is_async = False
        self.compensable_if: Callable[[Mapping[str, Any]], bool] | None = None
        self.path_inputs: tuple[str, ...] = ()  # inputs naming files: made absolute by intent_inputs
        self._fingerprint: str | None = None
        self.__doc__ = fn.__doc__
        self.__name__ = getattr(fn, "__name__", name)
        self.__wrapped__ = fn
        self._build_model()
        if not lazy:  # a hint pydantic cannot handle is reported where the action is defined
            _ = self._model

    def _build_model(self) -> None:
        sig = inspect.signature(self.fn)
        try:
            hints = get_type_hints(self.fn, include_extras=True)
        except Exception:  # unresolvable forward references: fall back to no type checks
            hints = {}
        fields: dict[str, Any] = {}
        self._renamed: dict[str, str] = {}
        self.ctx_param: str | None = None
        self.accepts_extra = False
        self.required: list[str] = []
        self.params: list[str] = []
        for pname, param in sig.parameters.items():
            if param.kind is inspect.Parameter.VAR_KEYWORD:
                self.accepts_extra = True
                continue
            if param.kind is inspect.Parameter.VAR_POSITIONAL:
                continue
            hint = hints.get(pname, Any)
            if hint is StepContext or param.annotation in ("StepContext", StepContext):
                self.ctx_param = pname
                continue
            self.params.append(pname)
            default = ... if param.default is inspect.Parameter.empty else param.default
            if default is ...:
                self.required.append(pname)
            if hasattr(pydantic.BaseModel, pname):  # e.g. "json": keep pydantic's attribute, alias the field
                self._renamed[f"p_{pname}"] = pname
                fields[f"p_{pname}"] = (hint, pydantic.Field(default, alias=pname))
            else:
                fields[pname] = (hint, default)
        self._fields = fields
        self._built: type[pydantic.BaseModel] | None = None
        self._trivial = not fields and not self.accepts_extra

    @property
    def _model(self) -> type[pydantic.BaseModel] | None:
        """The pydantic model of the inputs, built on first use when the action is ``lazy``."""
        if self._built is None and (self._fields or not self.accepts_extra):
            config = pydantic.ConfigDict(
                extra="allow" if self.accepts_extra else "forbid", arbitrary_types_allowed=True
            )
            self._built = pydantic.create_model(f"{self.name}_inputs", __config__=config, **self._fields)
        return self._built

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<Action {self.name!r}>"

    @property
    def fingerprint(self) -> str:
        """A hash of the function's source, to notice code that changed across a restart."""
        if self._fingerprint is None:
            self._fingerprint = _fingerprint(self.fn)
        return self._fingerprint

    def compensate(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Register how to undo one completed call of this action.

        The function receives ``(inputs, outputs)`` of the step it undoes (and,
        if it takes a third parameter, a :class:`CompensationContext`)::

            @write_file.compensate
            def _(inputs, outputs):
                os.remove(outputs["path"])
        """
        if not callable(fn):
            raise ActionError(f"compensate() needs a function, got {type(fn).__name__}", action=self.name)
        try:
            signature = inspect.signature(fn)
        except (TypeError, ValueError):
            raise ActionError(f"{fn!r} has no signature to read; wrap it in a def", action=self.name) from None
        params = [p for p in signature.parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        required = [p for p in params if p.default is p.empty]
        varargs = any(p.kind is p.VAR_POSITIONAL for p in signature.parameters.values())
        if len(required) > 3 or (len(params) < 2 and not varargs):
            raise ActionError(
                f"its undo function takes {len(params)} positional parameters; it is called with (inputs, outputs), "
                "or (inputs, outputs, ctx) to receive a CompensationContext",
                action=self.name,
            )
        self.compensation = fn
        self._compensation_is_async = inspect.iscoroutinefunction(fn)
        self._compensation_takes_ctx = len(params) >= 3
        return fn

    def is_compensable(self, inputs: Mapping[str, Any]) -> bool:
        """Whether a completed call with these inputs has something to undo."""
        if self.compensation is None:
            return False
        return self.compensable_if(inputs) if self.compensable_if else True

    def intent_inputs(self, inputs: Mapping[str, Any], workdir: str | None) -> dict[str, Any]:
        """The inputs to store in a compensation intent: relative paths made absolute against ``workdir``.

        A compensation may run in another process with another current
        folder, so it must never see a relative path.  For actions that name
        no path inputs (``path_inputs``) this is a copy of ``inputs``.

        >>> from airt_nb import Registry
        >>> Registry().get("file.write").intent_inputs({"path": "out/a.txt", "content": "x"}, "/home/ann/project")
        {'path': '/home/ann/project/out/a.txt', 'content': 'x'}
        """
        result = dict(inputs)
        for key in self.path_inputs:
            value = result.get(key)
            if isinstance(value, str) and value:
                result[key] = absolute_path(value, workdir)
        return result

    def run_compensation(
        self,
        inputs: dict[str, Any],
        outputs: Any,
        ctx: CompensationContext,
        run_async: Callable[[Any], Any] | None = None,
    ) -> str | None:
        """Run the compensation; returns its note (a short text, or ``None`` for a plain undo).

        An ``async def`` compensation runs through ``run_async`` (the engine's event loop), or
        ``asyncio.run`` when none is given.
        """
        assert self.compensation is not None
        if self._compensation_takes_ctx:
            note = self.compensation(inputs, outputs, ctx)
        else:
            note = self.compensation(inputs, outputs)
        if self._compensation_is_async:
            if run_async is None:
                import asyncio

                note = asyncio.run(note)
            else:
                note = run_async(note)
        return note if isinstance(note, str) and note else None

    # -- validation -----------------------------------------------------------

    def check_inputs(self, inputs: Mapping[str, Any], *, dynamic: frozenset[str] = frozenset()) -> list[str]:
        """Problems with a step's inputs known before it runs (``dynamic`` keys are skipped).

        Returns human-readable messages, each starting with the input's name.
        """
        problems = []
        if not self.accepts_extra:
            for key in inputs:
                if key not in self.params:
                    allowed = ", ".join(self.params) or "none"
                    problems.append(f"{key}: {self.name} takes no input {key!r} (it takes: {allowed})")
        for key in self.required:
            if key not in inputs:
                problems.append(f"{key}: {self.name} needs input {key!r}; add it under inputs:")
        if self._model is None or problems or not inputs:
            return problems  # no inputs and none required: nothing for the model to refuse
        static = {k: v for k, v in inputs.items() if k not in dynamic}
        try:
            self._model.model_validate(static)
        except pydantic.ValidationError as exc:
            for err in exc.errors():
                loc = err["loc"]
                if not loc or loc[0] in dynamic or err["type"] == "missing":
                    continue
                field = ".".join(str(p) for p in loc)
                problems.append(f"{field}: {_message(err)}")
        return problems

    def validate(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """Validate resolved inputs and return the keyword arguments for the call.

        Raises :class:`ActionError` naming each bad input.
        """
        if self._trivial:
            if inputs:
                raise ActionError(
                    f"takes no inputs but got {', '.join(map(str, inputs))}; remove them", action=self.name
                )
            return {}
        if self._model is None:
            return dict(inputs)
        try:
            model = self._model.model_validate(inputs)
        except pydantic.ValidationError as exc:
            details = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'inputs'}: {_message(err)}" for err in exc.errors()
            )
            raise ActionError(f"bad inputs: {details}", action=self.name) from None
        values = dict(model.__dict__)
        for field_name, param in self._renamed.items():
            values[param] = values.pop(field_name)
        if model.__pydantic_extra__:
            values.update(model.__pydantic_extra__)
        return values


def _asks_for_undo(inputs: Mapping[str, Any]) -> bool:
    return bool(inputs.get("undo"))


def _message(err: Any) -> str:
    """A pydantic error as one clause: our own ValueErrors as they are, others with the bad value."""
    if err["type"] == "value_error":
        return str(err.get("ctx", {}).get("error", err["msg"]))
    shown = repr(err.get("input"))
    return f"{err['msg']} (got {shown if len(shown) <= 60 else shown[:57] + '...'})"


class Registry:
    """Actions by name.

    The module-level :data:`default_registry` is what ``@action`` fills and
    what an :class:`~airt_nb.Engine` uses unless given another one; tests can
    pass their own ``Registry()`` instead of touching the default.

    Examples
    --------
    >>> import airt_nb
    >>> registry = airt_nb.Registry()              # the built-in actions, and yours
    >>> @registry.action
    ... def double(n: int) -> dict:
    ...     return {"n": 2 * n}
    >>> "double" in registry, "double" in airt_nb.Registry()
    (True, False)
    >>> with airt_nb.Engine("airt.db", registry=registry) as eng:
    ...     run = eng.start({"name": "d", "steps": [{"name": "x", "action": "double", "inputs": {"n": 21}}]})
    ...     run.wait(timeout=10), run.outputs["x"]
    ('COMPLETED', {'n': 42})
    """

    def __init__(self, *, builtins: bool = True):
        self._actions: dict[str, Action] = {}
        self.version = 0  # changes whenever an action is added or replaced (cached validations expire)
        self._lock = threading.Lock()
        self._listeners: weakref.WeakSet[Any] = weakref.WeakSet()
        self._callbacks: list[Callable[[str], None]] = []
        if builtins:
            for builtin in BUILTINS:
                # Their models are built on first use: every Registry() has these, and most use few of them.
                act = Action(builtin.fn, builtin.name, lazy=True)
                if builtin.undo is not None:
                    act.compensate(builtin.undo)
                if builtin.undone_if_asked:  # undone only when the step gives an undo
                    act.compensable_if = _asks_for_undo
                act.path_inputs = builtin.path_inputs
                self.register(act)

    def register(self, act: Action) -> Action:
        """Add (or replace) an action; replacing is how a re-run notebook cell updates one."""
        with self._lock:
            self._actions[act.name] = act
            self.version += 1
            listeners = list(self._listeners)
            callbacks = list(self._callbacks)
        for listener in listeners:
            listener.action_registered(act.name)
        for callback in callbacks:
            callback(act.name)
        return act

    def get(self, name: str) -> Action | None:
        """The action registered as ``name``, or ``None``."""
        return self._actions.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._actions

    def names(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(self._actions)

    def add_listener(self, listener: Any) -> None:
        """Call ``listener.action_registered(name)`` after each registration (held weakly)."""
        self._listeners.add(listener)

    def remove_listener(self, listener: Any) -> None:
        """Stop calling ``listener`` (see :meth:`add_listener`)."""
        self._listeners.discard(listener)

    def action(self, name_or_fn: Any = None) -> Any:
        """Decorator registering into this registry; see :func:`action`."""

        def wrap(fn: Callable[..., Any], name: str | None) -> Action:
            if isinstance(fn, Action):
                fn = fn.fn
            if not callable(fn):
                raise ActionError(f"@action needs a function, got {type(fn).__name__}")
            if name is None and not isinstance(getattr(fn, "__name__", None), str):
                raise ActionError(
                    f"a {type(fn).__name__} has no name to register it under; give one: @action('my_action')"
                )
            chosen = fn.__name__ if name is None else name
            problem = _name_problem(chosen)
            if problem:
                raise ActionError(f"action name {chosen[:80]!r} {problem}", action=None)
            try:
                return self.register(Action(fn, chosen))
            except ValueError as exc:  # no signature to read (a builtin type such as str)
                raise ActionError(f"{fn!r} cannot be an action: {exc}; wrap it in a def", action=chosen) from None

        if callable(name_or_fn) and not isinstance(name_or_fn, str):
            return wrap(name_or_fn, None)
        if name_or_fn is not None and not isinstance(name_or_fn, str):
            raise ActionError(f"@action(name) takes the action's name as a string, got {name_or_fn!r}")
        return lambda fn: wrap(fn, name_or_fn)


def _name_problem(name: str) -> str | None:
    """Why ``name`` cannot name an action in a spec's ``action:``, or None."""
    if not name.strip():
        return "is empty; give the action a name"
    if len(name) > 100:
        return "is longer than 100 characters; give it a shorter name"
    if any(ch.isspace() or not ch.isprintable() for ch in name) or "${{" in name:
        return "may hold letters, digits and punctuation only (no spaces, no ${{ }}); e.g. 'deploy' or 'files.copy'"
    return None


default_registry = Registry()


@overload
def action(name_or_fn: Callable[..., Any]) -> Action: ...
@overload
def action(name_or_fn: str | None = None) -> Callable[[Callable[..., Any]], Action]: ...
def action(name_or_fn: Any = None) -> Any:
    """Register a function as a workflow action.

    ``@action`` registers it under the function's name; ``@action("name")``
    under an explicit one.  Parameters are validated from type hints before
    the step runs; the return value must be JSON (dict, list, str, number,
    bool or None).

    Examples
    --------
    >>> from pathlib import Path
    >>> from airt_nb import action
    >>> @action
    ... def write_file(path: str, content: str) -> dict:
    ...     Path(path).write_text(content)
    ...     return {"path": path, "bytes": len(content)}
    >>> @write_file.compensate
    ... def _(inputs, outputs):
    ...     Path(outputs["path"]).unlink(missing_ok=True)
    >>> write_file("note.txt", "hi")               # still a plain function
    {'path': 'note.txt', 'bytes': 2}
    """
    return default_registry.action(name_or_fn)
