"""mcmia: membership-inference defenses, measured the same way for all of them.

Importing the package sets torch to one thread per task (``MCMIA_THREADS`` overrides; ``threads``)."""
import sys

from .threads import configure as _configure_threads

__version__ = "0.1.0"
try:
    _configure_threads()
except ValueError as _exc:  # a bad MCMIA_THREADS: one line, before any work
    print(f"mcmia: error: {_exc}", file=sys.stderr)
    raise SystemExit(2) from None
