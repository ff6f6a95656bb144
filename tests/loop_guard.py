"""A guard on the test session's event loop: a file descriptor the loop still lists as
watched, but the kernel no longer does, is dropped before another socket takes it on.

Why: the suite runs every async test on one asyncio loop (pytest-asyncio, session scope,
the standard selector loop; corral itself serves on uvloop). When something closes a
socket while the loop still watches it (a library on the test loop, a connect cancelled
between its close and its writer's removal), the loop keeps the fd in its map while the
kernel has dropped it from the epoll set. The next socket that gets the same fd number is
then "added" by changing that stale entry, which never reaches the kernel: its bytes sit
unread and the test hangs (seen once under two workers: two upstream streams with their
whole answers unread in tests/e2e/test_upstream.py). The guard asks the kernel
(``/proc/self/fdinfo``) only when an fd is added that the loop already lists, so the
common path costs nothing; what it finds is repaired and named in the run's warnings summary,
with who held the fd, so its cause can be mended where it lies.

It reads asyncio's private ``_selector`` and wraps ``_add_reader``/``_add_writer``: test
harness only, never imported by corral.
"""

from __future__ import annotations

import os
import selectors
import warnings
from asyncio import selector_events
from typing import Any

Adder = Any  # BaseSelectorEventLoop._add_reader / _add_writer


class StaleFdWarning(UserWarning):
    """Shown in the run's warnings summary (relayed from xdist's workers too), with the
    test it happened in."""


def _kernel_watches(epoll_fd: int, fd: int) -> bool:
    """Whether the kernel's epoll set holds ``fd`` for the file it names now."""
    try:
        with open(f"/proc/self/fdinfo/{epoll_fd}") as info:
            lines = info.read().splitlines()
        inode = os.fstat(fd).st_ino
    except OSError:
        return True  # nothing to tell: leave the loop as it is
    for line in lines:
        fields = line.split()
        if fields[:1] == ["tfd:"] and int(fields[1]) == fd:
            ino = fields[fields.index("ino:") + 1] if "ino:" in fields else None
            return ino is None or int(ino, 16) == inode
    return False


def _owner(key: selectors.SelectorKey) -> str:
    reader, writer = key.data
    return ", ".join(repr(h._callback) for h in (reader, writer) if h is not None)


def _guarded(add: Adder) -> Adder:
    def guarded(self: selector_events.BaseSelectorEventLoop, fd: Any, *args: Any) -> Any:
        selector = self._selector  # type: ignore[attr-defined]
        try:
            key = selector.get_key(fd)
        except (KeyError, ValueError):
            key = None
        epoll = isinstance(selector, selectors.EpollSelector)
        if epoll and key is not None and not _kernel_watches(selector.fileno(), key.fd):
            said = f"loop guard: fd {key.fd} was still listed for {_owner(key)}, "
            warnings.warn(StaleFdWarning(said + f"repaired for {args[0]!r}"), stacklevel=2)
            for handle in key.data:
                if handle is not None:
                    handle.cancel()
            selector.unregister(key.fd)  # epoll's "not registered" is swallowed there
        return add(self, fd, *args)

    return guarded


def install() -> None:
    loop_class = selector_events.BaseSelectorEventLoop
    if getattr(loop_class, "_corral_guarded", False):
        return
    loop_class._add_reader = _guarded(loop_class._add_reader)  # type: ignore[attr-defined]
    loop_class._add_writer = _guarded(loop_class._add_writer)  # type: ignore[attr-defined]
    loop_class._corral_guarded = True  # type: ignore[attr-defined]
