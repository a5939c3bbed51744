"""Sink partitions that must act when the process exits before the end of input (a
stop by a signal, a fatal error): without recovery nothing would finish what they hold."""

from __future__ import annotations

import atexit
import threading
import weakref
from typing import Protocol

__all__ = ["Exiting", "exit_lock", "forget", "remember"]


class Exiting(Protocol):
    def exit(self) -> None:
        """The process is exiting before the end of input."""


_LIVE: weakref.WeakSet[Exiting] = weakref.WeakSet()


def exit_lock() -> threading.RLock:
    """The lock a partition's writes and its ``exit`` share. Re-entrant: the exit hook
    runs in the thread a stop signal interrupted, which may hold the lock still (a signal
    can land as a with block exits, before its release), and must not wait for itself."""
    return threading.RLock()


def remember(partition: Exiting) -> None:
    _LIVE.add(partition)


def forget(partition: Exiting) -> None:
    _LIVE.discard(partition)


@atexit.register
def _at_exit() -> None:
    for partition in list(_LIVE):
        partition.exit()
