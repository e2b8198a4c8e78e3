"""One writer per run directory: the lock that ``train``, ``sweep`` and ``--resume`` hold.

A run directory has one owner at a time. The owner holds ``<run_dir>/run.lock``: a small
JSON file naming its host, pid, the pid's start time (Linux ``/proc``, so a reused pid is
not mistaken for the owner), the boot id and the command, held with an OS-level lock
(``fcntl.flock``) where the filesystem supports one. The lock is taken before anything is
written or compiled and released (the file removed) when the command ends.

A second process that finds the lock

* held by a live process (its ``flock`` is held, or the recorded pid is alive on this
  host) stops with :class:`RunLockedError` (a ``ValueError``; the CLI exits with status 2)
  before writing a byte: the message names the directory, the owner's host and pid, and
  what to do;
* left by a dead owner on this host (``kill -9``, a crash, a reboot: the kernel dropped
  its ``flock`` and the pid is gone or belongs to another process) takes it over with a
  :class:`StaleLockWarning`;
* left by a process on another host, whose liveness cannot be checked from here, stops
  unless ``force=True`` (``--force-unlock``) says that process is gone. A held ``flock``
  is never overridden.

Multi-process runs (``jax.distributed``): only process 0 holds the lock; it tells the
others through JAX's coordination service whether it got it, and every other process stops
with the same exit status when it did not (:func:`hold`).

Without ``fcntl`` (Windows) or on a filesystem without ``flock`` the file's contents
alone decide, which leaves a short race between two processes starting at the same
instant; liveness of a recorded pid is checked on POSIX only.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import json
import os
import socket
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

LOCK_FILE = "run.lock"
_UNSUPPORTED = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS, errno.EINVAL}
_held: dict[str, list[Any]] = {}  # this process's locks: real path -> [count, RunLock]
_rounds = [0]  # multi-process lock decisions so far (the same count on every process)
_WAIT_FOR_PROCESS_0_MS = 10 * 60 * 1000


class RunLockedError(ValueError):
    """The run directory is owned by another process (or its owner cannot be checked)."""

    def __init__(self, message: str, run_dir: Path, owner: dict[str, Any] | None) -> None:
        super().__init__(message)
        self.run_dir = run_dir
        self.owner = owner


class StaleLockWarning(UserWarning):
    """A lock left by a dead owner (or forced with ``--force-unlock``) was taken over."""


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """``(state letter, start time in clock ticks)`` of ``pid`` from ``/proc``, if any."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # after "pid (comm) "
    return fields[0], int(fields[19])


def this_owner(command: str | None = None) -> dict[str, Any]:
    """The record this process writes into the lock file."""
    stat = _proc_stat(os.getpid())
    return {
        "host": socket.gethostname(), "pid": os.getpid(),
        "pid_start": stat[1] if stat else None, "boot_id": _boot_id(),
        "started": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": command if command is not None else " ".join([_program(), *sys.argv[1:]]),
    }


def _program() -> str:
    """How this process was started: ``mimex-jax`` for the CLI however it was launched."""
    name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
    return "mimex-jax" if name in ("cli.py", "mimex-jax") else name


def owner_state(owner: dict[str, Any]) -> str:
    """``"alive"``, ``"dead"`` or ``"unknown"`` (another host, or no way to check here)."""
    if owner.get("host") != socket.gethostname():
        return "unknown"
    boot = _boot_id()
    if boot is not None and owner.get("boot_id") not in (None, boot):
        return "dead"  # the machine rebooted since
    if os.name != "posix":
        return "unknown"  # os.kill(pid, 0) would terminate the process on Windows
    pid = int(owner.get("pid", -1))
    if pid <= 0:
        return "dead"
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return "dead"
    except PermissionError:
        pass  # exists, owned by another user
    stat = _proc_stat(pid)
    if stat is not None:
        if stat[0] in ("Z", "X"):
            return "dead"  # exited, not yet reaped
        if owner.get("pid_start") is not None and stat[1] != owner["pid_start"]:
            return "dead"  # the pid now belongs to another process
    return "alive"


def read_owner(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The owner recorded in ``run_dir``'s lock file; None without a (readable) one."""
    try:
        return _parse(Path(run_dir, LOCK_FILE).read_bytes())
    except OSError:
        return None


def _parse(data: bytes) -> dict[str, Any] | None:
    try:
        owner = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    return owner if isinstance(owner, dict) and "pid" in owner else None


def _describe(owner: dict[str, Any] | None) -> str:
    if owner is None:
        return "another process (its lock file is still being written)"
    text = f"pid {owner.get('pid')} on host {owner.get('host')}"
    if owner.get("started"):
        text += f" since {owner['started']}"
    if owner.get("command"):
        text += f" ({owner['command']})"
    return text


def _read_fd(fd: int) -> bytes:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _same_file(fd: int, path: Path) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _try_flock(fd: int) -> bool | None:
    """True: locked; False: held by another process; None: not supported here."""
    if fcntl is None:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as e:
        if e.errno in (errno.EAGAIN, errno.EACCES):
            return False
        if e.errno in _UNSUPPORTED:
            return None
        raise
    return True


class RunLock:
    """The lock of one run directory; a context manager (re-entrant within a process).

    ``force=True`` (``--force-unlock``) takes over a lock whose owner cannot be checked
    (another host); it never overrides a held ``flock`` or a live owner on this host.
    """

    def __init__(self, run_dir: str | os.PathLike, *, force: bool = False,
                 command: str | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_FILE
        self.force = force
        self.command = command
        self._fd: int | None = None
        self._key: str | None = None

    # -- acquire / release ------------------------------------------------------------

    def _refuse(self, owner: dict[str, Any] | None, why: str, todo: str) -> RunLockedError:
        return RunLockedError(
            f"run directory {self.run_dir} is in use: it is locked by {_describe(owner)}, "
            f"{why}. {todo} Nothing in {self.run_dir} was changed.", self.run_dir, owner)

    def _open_locked(self) -> int:
        """Open the lock file and take its ``flock`` where the filesystem has one."""
        for _ in range(20):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0),
                             0o644)
            except OSError as e:
                raise ValueError(f"cannot create the lock file {self.path} of run directory "
                                 f"{self.run_dir}: {e.strerror}") from e
            got = _try_flock(fd)
            if got is False:
                owner = None
                for _ in range(10):  # a new owner may be between its flock and its write
                    owner = _parse(_read_fd(fd))
                    if owner is not None:
                        break
                    time.sleep(0.05)
                os.close(fd)
                raise self._refuse(owner, "which is running (it holds the lock file's OS "
                                          "lock)", f"Wait for it to finish, or stop it first "
                                                   f"(kill {owner['pid']} on {owner['host']})."
                                   if owner else "Wait for it to finish, or stop it first.")
            if _same_file(fd, self.path):
                return fd
            os.close(fd)  # the previous owner removed the file while we opened it: again
        raise RuntimeError(f"could not open a stable lock file at {self.path}")

    def acquire(self) -> RunLock:
        """Take the lock, or raise :class:`RunLockedError`; warns on a stale takeover."""
        key = os.path.realpath(self.run_dir)
        if key in _held:  # this process already owns it (the CLI and train() both ask)
            _held[key][0] += 1
            self._key = key
            return self
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ValueError(f"cannot create run directory {self.run_dir}: {e.strerror}") from e
        fd = self._open_locked()
        try:
            owner = _parse(_read_fd(fd))
            if owner is not None:
                self._check_previous(owner)
            record = json.dumps(this_owner(self.command), indent=1).encode() + b"\n"
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, record)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            raise
        self._fd, self._key = fd, key
        _held[key] = [1, self]
        return self

    def _check_previous(self, owner: dict[str, Any]) -> None:
        """Refuse a live or unverifiable previous owner; warn when taking one over."""
        me = this_owner()
        if all(owner.get(k) == me[k] for k in ("host", "pid", "pid_start", "boot_id")):
            return  # left by this very process (which no longer holds it): nothing to say
        state = owner_state(owner)
        if state == "alive":
            raise self._refuse(owner, "which is still running on this host",
                               f"Wait for it to finish, or stop it first (kill "
                               f"{owner['pid']}).")
        if state == "unknown" and not self.force:
            raise self._refuse(
                owner, "whose liveness cannot be checked from host "
                       f"{socket.gethostname()}",
                "If that process is no longer running (its node crashed or was "
                "preempted), run the same command with --force-unlock to take the lock "
                "over.")
        why = ("no longer running" if state == "dead" else
               "not checkable from here (taken over with --force-unlock)")
        warnings.warn(f"taking over the lock of {self.run_dir} from {_describe(owner)}: "
                      f"that process is {why}", StaleLockWarning, stacklevel=4)

    def release(self) -> None:
        """Release the lock (remove the lock file); the outermost release of a re-entrant
        lock does it."""
        key, self._key = self._key, None
        if key is None or key not in _held:
            return
        _held[key][0] -= 1
        if _held[key][0] > 0:
            return
        owner = _held.pop(key)[1]
        fd, owner._fd = owner._fd, None
        if fd is None:
            return
        try:
            if _same_file(fd, owner.path):
                owner.path.unlink()  # before unlocking: a waiter then sees a new inode
        finally:
            os.close(fd)  # drops the flock

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def is_held(run_dir: str | os.PathLike) -> bool:
    """Whether this process holds the lock of ``run_dir``."""
    return os.path.realpath(run_dir) in _held


def _from_process_0(value: str | None) -> str:
    """Process 0's ``value`` on every process of a ``jax.distributed`` run.

    Goes through the coordination service's key-value store (as orbax's barriers do), so
    nothing is placed on a device or compiled. Every process calls this the same number
    of times, in the same order, so the n-th call of each meets under one key.
    """
    import jax
    from jax._src import distributed as jax_distributed

    _rounds[0] += 1
    key = f"mimex_jax/runlock/{_rounds[0]}"
    client = jax_distributed.global_state.client
    if jax.process_index() == 0:
        client.key_value_set(key, value)
        return value
    return client.blocking_key_value_get(key, _WAIT_FOR_PROCESS_0_MS)


@contextlib.contextmanager
def hold(run_dir: str | os.PathLike, *, force: bool = False) -> Iterator[None]:
    """Hold ``run_dir``'s lock for the block, across all processes of the run.

    With one process this is :class:`RunLock`. With several (``jax.distributed``), process
    0 takes the lock and tells the others (through JAX's coordination service) whether it
    did; they raise :class:`RunLockedError` when it did not, so every process stops before
    compiling. Re-entrant: a nested ``hold`` of the same directory (e.g. the CLI around
    :func:`mimex_jax.experiment.train`) does nothing more.
    """
    jax_mod = sys.modules.get("jax")  # never imported (or a backend started) just for this
    multi = (jax_mod is not None and jax_mod.distributed.is_initialized()
             and jax_mod.process_count() > 1)
    if not multi:
        with RunLock(run_dir, force=force):
            yield
        return
    key = os.path.realpath(run_dir)
    if key in _held:  # every process registers, so nested holds agree on all of them
        _held[key][0] += 1
        try:
            yield
        finally:
            _held[key][0] -= 1
        return
    lock, error = None, None
    if jax_mod.process_index() == 0:
        lock = RunLock(run_dir, force=force)
        try:
            lock.acquire()
        except Exception as e:  # whatever it is, the others must hear of it, not hang
            error = e
    verdict = _from_process_0(None if lock is None else "ok" if error is None else
                              str(error))
    if error is not None:
        raise error
    if verdict != "ok":
        raise RunLockedError(f"run directory {run_dir}: process 0 of this run could not take "
                             f"its lock, so this process stops too. Process 0 says: {verdict}",
                             Path(run_dir), None)
    if lock is None:
        _held[key] = [1, RunLock(run_dir)]  # a marker: nothing to release here
    try:
        yield
    finally:
        if lock is not None:
            lock.release()
        else:
            _held.pop(key, None)
