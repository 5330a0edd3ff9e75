"""The engine's own asyncio event loop, where ``async def`` actions and compensations run.

One loop per engine, on a daemon thread of its own, started the first time
an async action runs.  A step's worker thread hands the coroutine to it and
waits for the result, so an async action is validated, keyed, retried and
checkpointed exactly like a plain one.  The loop of the caller (a notebook
kernel runs one on its main thread) is never used and never blocked: the
coroutine runs here, and only a worker thread waits for it.

Cancelling: while an async step runs, the worker looks every
:data:`POLL` seconds at the step's ``cancelled`` event; when it is set and
``should_cancel()`` agrees (a workflow cancel, or the engine closing), the
task is cancelled (the coroutine sees ``asyncio.CancelledError`` at its
next ``await``) and the step is reported interrupted
(:class:`~airt_nb.StepInterrupted`): it did not complete.

Imports nothing of the engine.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from .actions import StepInterrupted

if TYPE_CHECKING:
    import asyncio

__all__ = ["POLL", "AsyncRunner"]

log = logging.getLogger("airt_nb")

POLL = 0.05  # seconds between two looks at a running async step's cancel flag
CANCEL_GRACE = 5.0  # seconds a cancelled coroutine is given to clean up


class AsyncRunner:
    """An event loop on its own thread, started on first use (one per engine).

    >>> runner = AsyncRunner()
    >>> async def double(x):
    ...     return 2 * x
    >>> runner.run(double(21))
    42
    >>> runner.close()
    """

    def __init__(self, name: str = "airt-async"):
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False

    @property
    def started(self) -> bool:
        return self._loop is not None

    def _ensure(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._closed:
                raise StepInterrupted("the engine is closing")
            if self._loop is None:
                import asyncio  # here: most workflows have no async action, and asyncio takes 20 ms to import

                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def main() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()

                self._thread = threading.Thread(target=main, name=self._name, daemon=True)
                self._thread.start()
                ready.wait()
                self._loop = loop
            return self._loop

    def run(
        self,
        coro: Coroutine[Any, Any, Any],
        *,
        cancelled: threading.Event | None = None,
        should_cancel: Callable[[], bool] | None = None,
    ) -> Any:
        """Run ``coro`` on the loop and return its result (or raise its exception) in this thread.

        With ``cancelled``: when it is set and ``should_cancel()`` (default: always) is true, the
        task is cancelled and :class:`~airt_nb.StepInterrupted` raised.
        """
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("an async action cannot wait for another one on the engine's loop; await it instead")
        try:
            loop = self._ensure()
        except BaseException:
            coro.close()
            raise
        import asyncio

        future = asyncio.run_coroutine_threadsafe(coro, loop)
        if cancelled is None:
            return future.result()
        while True:
            try:
                return future.result(timeout=POLL)
            except concurrent.futures.TimeoutError:
                if cancelled.is_set() and (should_cancel is None or should_cancel()):
                    future.cancel()
                    try:
                        future.result(timeout=CANCEL_GRACE)
                    except (concurrent.futures.CancelledError, concurrent.futures.TimeoutError):
                        pass
                    except Exception:
                        log.debug("a cancelled async step raised while cleaning up", exc_info=True)
                    raise StepInterrupted("cancelled while it ran") from None
            except concurrent.futures.CancelledError:
                raise StepInterrupted("cancelled while it ran") from None

    def close(self, timeout: float = 5.0) -> None:
        """Cancel what still runs and stop the loop's thread."""
        with self._lock:
            self._closed = True
            loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        import asyncio

        async def _cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        try:
            asyncio.run_coroutine_threadsafe(_cancel_all(), loop).result(timeout)
        except Exception:
            log.debug("async tasks did not all stop in time", exc_info=True)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        if not thread.is_alive():
            loop.close()
