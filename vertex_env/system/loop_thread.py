"""An asyncio service on a thread of its own: the emulator and the proxy both run this way in tests and `run --proxy`."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class LoopThread:
    """A daemon thread running one event loop. `start()` returns once `setup` finished on that loop (or raises
    its error, after `cleanup`); `stop()` runs `cleanup` there, then stops and closes the loop."""

    def __init__(
        self,
        name: str,
        loop_factory: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop,
    ) -> None:
        self.name = name
        self.loop_factory = loop_factory
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._cleanup: Callable[[], Coroutine[Any, Any, None]] | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(
        self,
        setup: Callable[[], Coroutine[Any, Any, T]],
        cleanup: Callable[[], Coroutine[Any, Any, None]],
    ) -> T:
        loop = self.loop_factory()
        ready = threading.Event()
        outcome: list[T] = []
        failure: list[BaseException] = []

        def main() -> None:
            asyncio.set_event_loop(loop)
            try:
                outcome.append(loop.run_until_complete(setup()))
            except BaseException as err:  # handed to start()'s caller, not lost in the thread
                failure.append(err)
                with contextlib.suppress(Exception):
                    loop.run_until_complete(cleanup())
                ready.set()
                return
            ready.set()
            loop.run_forever()

        thread = threading.Thread(target=main, name=self.name, daemon=True)
        thread.start()
        ready.wait()
        if failure:
            thread.join()
            _close(loop)
            raise failure[0]
        self._loop, self._thread, self._cleanup = loop, thread, cleanup
        return outcome[0]

    def stop(self) -> None:
        loop, thread, cleanup = self._loop, self._thread, self._cleanup
        if loop is None or thread is None or cleanup is None:
            return
        self._loop = self._thread = self._cleanup = None
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(cleanup(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        _close(loop)


def _close(loop: asyncio.AbstractEventLoop) -> None:
    """Finish what the loop still owns (tasks a cleanup did not end, such as a handler still waiting on a hung
    upstream; async generators; executor threads), then close it. A task left pending on a closed loop is
    reported as "Task was destroyed but it is pending!" whenever the collector meets it, in whatever runs then."""
    with contextlib.suppress(Exception):
        pending = asyncio.all_tasks(loop)
        if pending:  # gather() of nothing would make (and leave open) a loop of its own
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    with contextlib.suppress(Exception):
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
    loop.close()
