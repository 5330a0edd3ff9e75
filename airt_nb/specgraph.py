"""Dependency checks of a spec's steps: cycles, and whether one step depends on another.

Both walk iteratively, so a chain of thousands of steps never recurses.
Imports nothing from airt_nb.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["Ancestry", "find_cycle"]


def find_cycle(deps: Mapping[str, tuple[str, ...]], known: Mapping[str, int]) -> list[str]:
    """One dependency cycle as ``[a, b, ..., a]``, or ``[]``; iterative, so long chains never recurse.

    ``known`` maps each step's name to its position.
    """
    # The usual spec: every step depends on steps written before it, so there is no cycle to look for.
    if all(known.get(dep, -1) < known.get(name, -1) for name, ds in deps.items() for dep in ds if dep in known):
        return []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for root in deps:
        if root in state:
            continue
        path: list[str] = [root]
        state[root] = 1
        pending: list[list[str]] = [[d for d in deps[root] if d in known and d != root]]
        while path:
            if not pending[-1]:
                state[path.pop()] = 2
                pending.pop()
                continue
            dep = pending[-1].pop()
            if state.get(dep) == 1:
                return [*path[path.index(dep) :], dep]
            if dep not in state:
                state[dep] = 1
                path.append(dep)
                pending.append([d for d in deps[dep] if d in known and d != dep])
    return []


class Ancestry:
    """Whether one step depends on another, directly or through other steps.

    Each step's ancestors are a bit mask over step positions, built on first
    use in dependency order: sets of names would cost memory and time
    quadratic in the length of a long chain of steps.  Needs an acyclic graph.
    """

    def __init__(self, deps: Mapping[str, tuple[str, ...]]):
        self._deps = deps
        self._masks: dict[str, int] | None = None
        self._bit = {name: 1 << i for i, name in enumerate(deps)}

    def _build(self) -> dict[str, int]:
        deps, bit = self._deps, self._bit
        masks: dict[str, int] = {}
        for root in deps:
            stack = [(root, False)]
            while stack:  # iterative post-order: a chain of thousands of steps must not recurse
                name, ready = stack.pop()
                if name in masks:
                    continue
                known = [d for d in deps[name] if d in deps]
                if ready:
                    mask = 0
                    for d in known:
                        mask |= bit[d] | masks[d]
                    masks[name] = mask
                else:
                    stack.append((name, True))
                    stack.extend((d, False) for d in known if d not in masks)
        return masks

    def __call__(self, step: str, target: str) -> bool:
        if self._masks is None:
            self._masks = self._build()
        return bool(self._masks.get(step, 0) & self._bit.get(target, 0))
