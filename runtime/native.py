"""The compiled part of the runtime (runtime/_native.c), or None where it has not been built.

Build it with `python -m runtime.build` (scripts/setup.sh and the image do). Without it the runtime
computes the same results in Python and numpy, at about a third of the speed (231 against 75 us of
CPU per single-e-mail request in the peers benchmark: docs/service/peers.md).
"""

from __future__ import annotations

from types import ModuleType

__all__ = ["native"]

native: ModuleType | None
try:
    from runtime import _native as native
except ImportError:  # not built: the Python path stands in (same results)
    native = None
