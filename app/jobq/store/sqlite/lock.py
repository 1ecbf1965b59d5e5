"""The one-server-per-file rule of the embedded store, held as a lock next to the database.

SQLite itself would let a second server open the file; both would then reap, lease and
promote the same jobs as if each were alone (the embedded store's leader is always this
process). An exclusive `flock` on `<database>.lock`, held for the life of the process that
serves the file, makes the second one refuse to start instead. The kernel drops the lock
when the process dies, however it dies, so there is never a stale lock to clean up.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from jobq.core.errors import StoreUnavailable


class FileLock:
    def __init__(self, database: Path) -> None:
        self.database = database
        self.path = database.with_name(database.name + ".lock")
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        if self._fd is not None:
            return
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StoreUnavailable(
                f"cannot create the lock file {self.path}: {exc.strerror}"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            raise StoreUnavailable(
                f"SQLite database {self.database} is in use by another jq-server"
                f"{f' (pid {holder})' if holder else ''}; one server per file: stop it, or use"
                " PostgreSQL for several replicas"
            ) from None
        except OSError as exc:
            os.close(fd)
            raise StoreUnavailable(f"cannot lock {self.path}: {exc.strerror}") from None
        # The holder's pid, for the message above; best effort (the lock is what counts).
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


def _read_pid(fd: int) -> str:
    try:
        return os.pread(fd, 32, 0).decode(errors="replace").strip()
    except OSError:
        return ""
