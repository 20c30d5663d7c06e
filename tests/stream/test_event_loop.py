"""STREAM_EVENT_LOOP: the Faust engine runs on uvloop when asked and installed, else on asyncio's loop."""

from __future__ import annotations

import asyncio
import logging
import sys
import threading

import pytest
import uvloop

from core.config import StreamSettings
from stream.worker import use_event_loop


def loop_type_after(choice: str) -> type[asyncio.AbstractEventLoop]:
    """The current loop's type once ``use_event_loop(choice)`` ran, in a thread of its own."""
    seen: list[type[asyncio.AbstractEventLoop]] = []

    def run() -> None:
        asyncio.set_event_loop(asyncio.SelectorEventLoop())
        use_event_loop(choice)
        loop = asyncio.get_event_loop()
        seen.append(type(loop))
        loop.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return seen[0]


def test_uvloop_is_the_default() -> None:
    assert StreamSettings().event_loop == "uvloop"


def test_uvloop_becomes_the_threads_loop() -> None:
    assert issubclass(loop_type_after("uvloop"), uvloop.Loop)


def test_asyncio_keeps_the_loop_there_is() -> None:
    assert loop_type_after("asyncio") is asyncio.SelectorEventLoop


def test_without_uvloop_the_worker_says_so_and_runs_on_asyncio(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop -> ImportError
    caplog.set_level(logging.WARNING, logger="stream.worker")
    assert loop_type_after("uvloop") is asyncio.SelectorEventLoop
    assert "uvloop is not installed" in caplog.text
