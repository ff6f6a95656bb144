"""Child processes that must not outlive the API process."""

from __future__ import annotations

import signal


def set_parent_death_signal(sig: int = signal.SIGTERM) -> None:
    """Linux: the kernel sends ``sig`` to this process when its parent dies, even by
    SIGKILL. Elsewhere a no-op (callers that care also check their parent's pid)."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, sig)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
