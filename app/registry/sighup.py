"""SIGHUP re-reads the manifest: a ConfigMap update or an edited file goes live without the admin API."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.service import Service

log = logging.getLogger("app.registry")


@contextmanager
def reloads(service: Service) -> Iterator[None]:
    """While the app serves, SIGHUP schedules ``service.reload_manifest()`` (swaps are serialised by the
    registry's lock). Only in the main thread, where a loop can own a signal, and only with a manifest."""
    if service.settings.models_manifest is None or threading.current_thread() is not threading.main_thread():
        yield
        return
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[dict[str, str]]] = set()

    def hup() -> None:
        log.info("SIGHUP: re-reading %s", service.settings.models_manifest)
        task = loop.create_task(service.reload_manifest())
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    loop.add_signal_handler(signal.SIGHUP, hup)
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGHUP)
