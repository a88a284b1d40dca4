"""Bot processes forked from a warm interpreter: real processes without the import bill.

Every ``python -m bot …`` a test launches pays ~1 s of CPU to import the bot (``ask``) and
~5 s more for ``run`` (aiogram builds the pydantic schemas of its ~450 Bot API types at
import time). With dozens of launches that was a third of the suite's CPU on a 2-core
machine. So each pytest worker starts one *zygote* — ``python -m tests.zygote SOCKET`` —
that imports the bot's modules once and then forks on request. The child is a real process
(its own pid, signals, exit status, pipes, environment and working directory) that runs
``bot/__main__.py`` exactly as ``python -m bot`` does; only the interpreter start and the
imports are shared. What a fresh interpreter would do differently at import time is
covered by the tests that still launch cold (``tests/test_cli.py``, the ``/healthz``
launch test, ``warm=False``), and ``VOICEBOT_TESTS_COLD=1`` makes every launch cold.

The zygote is single-threaded (a selector over its socket and one pidfd per child), so a
fork never copies a lock held by another thread. It reports each child's pid when it
starts and its wait status when it ends; :class:`ForkedProcess` gives tests the parts of
``subprocess.Popen`` they use.
"""

from __future__ import annotations

import array
import atexit
import contextlib
import json
import os
import random
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

# What `python -m bot` imports on the way to each command (imported in the zygote only).
_WARM_MODULES = (
    "bot.cli",
    "bot.ask",
    "bot.bootstrap",
    "bot.http.server",
    "bot.adapters.telegram.app",
    "bot.adapters.slack.app",
    "bot.migrations",
    "procrastinate",
    "asyncpg",
    "aiosqlite",
    "psycopg",
)
_MAIN = str(Path(__file__).resolve().parent.parent / "bot" / "__main__.py")
_COLD = "VOICEBOT_TESTS_COLD"


# --- the zygote (runs as `python -m tests.zygote SOCKET`) ------------------------------


def _serve(path: str) -> None:
    import importlib

    for name in _WARM_MODULES:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    sys.stdout.flush()
    sys.stderr.flush()

    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ, "accept")
    children: dict[int, tuple[int, socket.socket]] = {}  # pidfd -> (pid, connection)
    print("ready", flush=True)  # the parent waits for this line

    while True:
        for key, _ in sel.select():
            if key.data == "accept":
                conn, _ = listener.accept()
                request = _receive(conn)
                if request is None:  # the parent is going away
                    conn.close()
                    if not children:
                        return
                    continue
                payload, fds = request
                pid = os.fork()
                if pid == 0:  # the child: never returns
                    sel.close()
                    listener.close()
                    for _pid, other in children.values():
                        other.close()
                    for pidfd in children:
                        os.close(pidfd)
                    _child(conn, payload, fds)
                for fd in fds:
                    os.close(fd)
                pidfd = os.pidfd_open(pid)
                children[pidfd] = (pid, conn)
                sel.register(pidfd, selectors.EVENT_READ, "child")
                conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")
            else:
                pidfd = key.fd
                pid, conn = children.pop(pidfd)
                sel.unregister(pidfd)
                os.close(pidfd)
                _, status = os.waitpid(pid, 0)
                with contextlib.suppress(OSError):
                    conn.sendall(json.dumps({"status": status}).encode() + b"\n")
                conn.close()


def _receive(conn: socket.socket) -> tuple[dict[str, Any], list[int]] | None:
    fds = array.array("i")
    data, ancdata, _, _ = conn.recvmsg(1 << 20, socket.CMSG_SPACE(3 * fds.itemsize))
    for level, kind, body in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(body[: len(body) - (len(body) % fds.itemsize)])
    if not data:
        return None
    while not data.endswith(b"\n"):
        more = conn.recv(1 << 20)
        if not more:
            return None
        data += more
    return json.loads(data), list(fds)


def _child(conn: socket.socket, payload: dict[str, Any], fds: list[int]) -> None:
    code = 1
    try:
        conn.close()
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        for fd in fds:
            if fd > 2:
                os.close(fd)
        os.chdir(payload["cwd"])
        os.environ.clear()
        os.environ.update(payload["env"])
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD, signal.SIGPIPE):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # as CPython sets it at start-up
        signal.signal(signal.SIGINT, signal.default_int_handler)
        random.seed()
        sys.argv = [_MAIN, *payload["argv"]]
        import runpy

        try:
            runpy.run_path(_MAIN, run_name="__main__")
            code = 0
        except SystemExit as exit_:
            code = _exit_code(exit_.code)
        except KeyboardInterrupt:
            code = 130
        except BaseException:
            import traceback

            traceback.print_exc()
            code = 1
        atexit._run_exitfuncs()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os._exit(code)


def _exit_code(value: object) -> int:
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    print(value, file=sys.stderr)
    return 1


# --- the client (in the test process) --------------------------------------------------


class _Zygote:
    """This test process's zygote, started on first use and stopped at exit."""

    _lock = threading.Lock()
    _instance: _Zygote | None = None

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="voicebot-zygote-")
        self.path = os.path.join(self.dir, "sock")
        env = dict(os.environ)
        # numpy's BLAS would start threads at import; a fork must copy a single thread.
        env.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        env.pop(_COLD, None)
        root = Path(__file__).resolve().parent.parent
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.zygote", self.path],
            cwd=root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if line.strip() != b"ready":
            raise RuntimeError(f"the test zygote did not start ({self.proc.wait()})")
        atexit.register(self.close)

    @classmethod
    def get(cls) -> _Zygote:
        with cls._lock:
            if cls._instance is None or cls._instance.proc.poll() is not None:
                cls._instance = _Zygote()
            return cls._instance

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        with contextlib.suppress(OSError):
            os.unlink(self.path)
            os.rmdir(self.dir)


def cold() -> bool:
    """Whether launches start a fresh interpreter (``VOICEBOT_TESTS_COLD=1``)."""
    return os.environ.get(_COLD, "") not in ("", "0")


class ForkedProcess:
    """A ``python -m bot ARGS`` forked from the zygote: the parts of ``Popen`` tests use.

    ``stdout``/``stderr``: ``subprocess.PIPE``, ``subprocess.DEVNULL``, an open file, or
    (``stderr`` only) ``subprocess.STDOUT``; pipes appear as binary ``stdout``/``stderr``.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: str | Path,
        stdin: int | IO[Any] | None = subprocess.DEVNULL,
        stdout: int | IO[Any] | None = None,
        stderr: int | IO[Any] | None = None,
    ) -> None:
        self.args = ["-m", "bot", *argv]
        self.returncode: int | None = None
        self._reading = threading.Lock()  # one reader of the zygote's socket at a time
        self.stdout: IO[bytes] | None = None
        self.stderr: IO[bytes] | None = None
        close_after: list[int] = []

        def target(spec: int | IO[Any] | None, std: int, reading: bool) -> int:
            if spec is None:
                return std
            if spec == subprocess.DEVNULL:
                fd = os.open(os.devnull, os.O_RDWR)
                close_after.append(fd)
                return fd
            if spec == subprocess.PIPE:
                r, w = os.pipe()
                mine, theirs = (w, r) if reading else (r, w)
                close_after.append(theirs)
                if std == 1:
                    self.stdout = os.fdopen(mine, "rb")
                elif std == 2:
                    self.stderr = os.fdopen(mine, "rb")
                else:
                    os.close(mine)  # stdin pipes are not needed by any test
                return theirs
            if isinstance(spec, int):
                return spec
            return spec.fileno()

        fds = [target(stdin, 0, True), target(stdout, 1, False)]
        fds.append(fds[1] if stderr == subprocess.STDOUT else target(stderr, 2, False))
        payload = {"argv": list(argv), "env": dict(env), "cwd": str(cwd)}
        self._conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._conn.connect(_Zygote.get().path)
            self._conn.sendmsg(
                [json.dumps(payload).encode() + b"\n"],
                [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))],
            )
            self._buffer = b""
            self.pid = int(self._message(None)["pid"])
        finally:
            for fd in close_after:
                os.close(fd)

    def _message(self, timeout: float | None) -> dict[str, Any]:
        self._conn.settimeout(timeout)
        while b"\n" not in self._buffer:
            chunk = self._conn.recv(4096)
            if not chunk:
                raise RuntimeError("the test zygote went away")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        message: dict[str, Any] = json.loads(line)
        return message

    def poll(self) -> int | None:
        # A thread blocked in wait() owns the socket (its timeout, its buffer): reading it
        # here too raced that thread for the exit report ("the zygote went away"), so poll
        # only reads when no one waits, and otherwise leaves the report to the waiter.
        if self.returncode is None and self._reading.acquire(blocking=False):
            try:
                if self.returncode is None:
                    with contextlib.suppress(TimeoutError, BlockingIOError):
                        self._finish(self._message(0))
            finally:
                self._reading.release()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        with self._reading:
            if self.returncode is None:
                try:
                    self._finish(self._message(timeout))
                except TimeoutError:
                    raise subprocess.TimeoutExpired(self.args, timeout or 0) from None
        assert self.returncode is not None
        return self.returncode

    def _finish(self, message: dict[str, Any]) -> None:
        self.returncode = os.waitstatus_to_exitcode(int(message["status"]))
        self._conn.close()

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def popen(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: str | Path,
    stdin: int | IO[Any] | None = subprocess.DEVNULL,
    stdout: int | IO[Any] | None = None,
    stderr: int | IO[Any] | None = None,
    warm: bool = True,
) -> ForkedProcess | subprocess.Popen[bytes]:
    """``python -m bot ARGV``: forked from the zygote, or a fresh interpreter when cold."""
    if warm and not cold():
        return ForkedProcess(argv, env=env, cwd=cwd, stdin=stdin, stdout=stdout, stderr=stderr)
    return subprocess.Popen(
        [sys.executable, "-m", "bot", *argv],
        env=dict(env),
        cwd=cwd,
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
    )


def run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: str | Path,
    timeout: float = 120,
    warm: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Like ``subprocess.run([python, -m, bot, *argv], capture_output=True, text=True)``."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = popen(argv, env=env, cwd=cwd, stdout=out, stderr=err, warm=warm)
        deadline = time.monotonic() + timeout
        try:
            code = proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(
            [sys.executable, "-m", "bot", *argv],
            code,
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
        )


if __name__ == "__main__":
    _serve(sys.argv[1])
