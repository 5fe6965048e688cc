"""Repository locations, atomic file writes (a crash mid-write never leaves a half file) written with the
user's umask, and the sweep of temporary files that spares those of a live run (one holding its lock)."""
from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
from pathlib import Path

REPO_ROOT = Path(os.environ.get("MCMIA_REPO", Path(__file__).resolve().parents[2]))


def weights_root() -> Path:
    """The folder of trained weights: ``$MCMIA_WEIGHTS`` or data/weights of the checkout."""
    return Path(os.environ.get("MCMIA_WEIGHTS", REPO_ROOT / "data" / "weights"))


def umask() -> int:
    """The process's umask, read without changing it (``/proc``; elsewhere set and restored at once)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode a new file gets from ``open``: 0o666 less the umask (``mkstemp`` makes 0o600)."""
    return 0o666 & ~umask()


def dir_mode() -> int:
    """The mode a new folder gets from ``mkdir``: 0o777 less the umask (``mkdtemp`` makes 0o700)."""
    return 0o777 & ~umask()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and ``os.replace``; the file gets
    the mode of any file the user creates (0o666 less the umask)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), file_mode())
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def _unless_locked(locks):
    """True while holding each existing lock file of ``locks`` (``flock``, not waiting), False when a live
    process holds one (a lock file that does not exist is held by nobody)."""
    with contextlib.ExitStack() as stack:
        for lock in locks:
            try:
                fd = os.open(lock, os.O_RDONLY)
            except FileNotFoundError:
                continue
            stack.callback(os.close, fd)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            stack.callback(fcntl.flock, fd, fcntl.LOCK_UN)
        yield True


def remove_unless_locked(groups: dict[str, list[Path]], lock_dirs) -> int:
    """Remove the files and folders of each key of ``groups`` whose lock (``<lock dir>/<key>``, as
    ``engine.file_lock`` takes it) no live process holds; the lock is held while they are removed, so a run
    starting meanwhile waits. Return how many paths were removed."""
    removed = 0
    for key, paths in sorted(groups.items()):
        with _unless_locked([Path(d) / key for d in lock_dirs]) as free:
            if not free:
                continue
            for p in paths:
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    p.unlink(missing_ok=True)
                removed += 1
    return removed
