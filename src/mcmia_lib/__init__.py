"""mcmia: membership-inference defenses, measured the same way for all of them.

Importing the package sets torch to one thread per task (``MCMIA_THREADS`` overrides; ``threads``)."""
from .threads import configure as _configure_threads

__version__ = "0.1.0"
_configure_threads()
