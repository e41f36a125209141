"""Warm Blender worker processes: start once, serve many jobs, survive crashes.

A `Worker` runs `blender_scripts/worker.py` (bpy module or blender binary) and talks
one JSON line per job over its stdin/stdout; everything Blender prints goes to the
worker's log file. A `WorkerPool` spreads jobs over a few workers (threads drive
them; the work happens in the Blender processes) and:

- enforces a per-job timeout (the worker is killed and restarted),
- reports a crashed job (process died, or timed out) with the tail of its Blender
  log, and retries it ONCE on a fresh worker; a second failure raises BlenderCrash,
- gives each worker a private TMPDIR, so the `blender_*` folders Blender leaves
  behind (crashed runs never clean them) are deleted with the worker.

A job that raises inside Blender is not a crash: the worker lives on and the pool
raises BlenderJobError with the Python traceback (retrying the same job would fail
the same way).
"""

from __future__ import annotations

import itertools
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from anomalygen.blender.locate import Launcher, find_launcher, scripts_dir

TMP_PREFIX = "anomalygen-blender-"
LOG_TAIL_LINES = 60


class BlenderError(RuntimeError):
    """A Blender job failed; `log` holds the relevant Blender output."""

    def __init__(self, message: str, log: str = ""):
        super().__init__(message + (f"\n--- Blender log (tail) ---\n{log}" if log else ""))
        self.summary = message
        self.log = log


class BlenderJobError(BlenderError):
    """The job raised inside Blender (bad input, a draw that cannot make the defect)."""


class BlenderCrash(BlenderError):
    """The Blender process died or hung on this job, twice (first try + one retry)."""


@dataclass
class Incident:
    """One crash or timeout the pool recovered from (or gave up on)."""

    job_id: int
    attempt: int
    reason: str
    log: str


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_tmp(base: str | None = None) -> list[str]:
    """Remove private TMPDIRs of workers whose owning process is gone (killed builds)."""
    base = base or tempfile.gettempdir()
    removed = []
    for p in Path(base).glob(TMP_PREFIX + "*"):
        try:
            owner = int(p.name[len(TMP_PREFIX):].split("-")[0])
        except ValueError:
            continue
        if owner != os.getpid() and not _pid_alive(owner):
            shutil.rmtree(p, ignore_errors=True)
            removed.append(str(p))
    return removed


def _tail(path: Path, start: int = 0, lines: int = LOG_TAIL_LINES) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(start)
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


class Worker:
    """One Blender process serving jobs; restartable."""

    def __init__(self, launcher: Launcher, start_timeout: float = 120.0, env: dict | None = None):
        self.launcher = launcher
        self.start_timeout = start_timeout
        self.env = env or {}
        self.proc: subprocess.Popen | None = None
        self.tmp: Path | None = None
        self.log_path: Path | None = None
        self.starts = 0
        self.info: dict = {}
        self._lines: queue.Queue = queue.Queue()
        self.eof = False

    # -- lifecycle
    def start(self) -> None:
        self.stop()
        self.tmp = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{os.getpid()}-"))
        self.log_path = self.tmp / "blender.log"
        env = {**os.environ, **self.env, "TMPDIR": str(self.tmp), "TEMP": str(self.tmp), "TMP": str(self.tmp)}
        cmd = self.launcher.command(scripts_dir() / "worker.py", ["--serve"])
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                                         env=env, cwd=str(self.tmp), text=True, bufsize=1,
                                         start_new_session=True)
        self.starts += 1
        self._lines = queue.Queue()
        threading.Thread(target=self._pump, args=(self.proc, self._lines), daemon=True).start()
        ready = self._read(self.start_timeout)
        if ready is None or not ready.get("ready"):
            log = _tail(self.log_path)
            self.stop()
            raise BlenderCrash(f"Blender worker did not start ({self.launcher.describe()})", log)
        self.info = ready

    @staticmethod
    def _pump(proc: subprocess.Popen, lines: queue.Queue) -> None:
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)   # EOF: the process is gone

    def _read(self, timeout: float) -> dict | None:
        """Next reply, or None on EOF/timeout (`self.eof` tells which)."""
        self.eof = False
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                line = self._lines.get(timeout=left)
            except queue.Empty:
                return None
            if line is None:
                self.eof = True
                return None
            try:
                return json.loads(line)
            except ValueError:
                continue   # a stray line on the reply channel: skip it

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        """End the process (EOF first, then kill) and delete its TMPDIR (Blender's blender_* folders)."""
        if self.proc is not None:
            try:
                if self.proc.poll() is None:
                    self.proc.stdin.close()
                    try:
                        self.proc.wait(timeout=5)
                    except subprocess.TimeoutExpired:
                        self._kill()
            except (OSError, ValueError):
                self._kill()
            for stream in (self.proc.stdin, self.proc.stdout):
                try:
                    stream.close()
                except (OSError, ValueError):
                    pass
            self.proc = None
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None

    def _kill(self) -> None:
        try:
            os.killpg(self.proc.pid, 9)   # its own session: takes Blender's children too
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass

    # -- one job
    def call(self, msg: dict, timeout: float) -> tuple[dict | None, str, str]:
        """Send one message; returns (reply, failure reason, log of this job).

        reply None means the worker crashed or timed out (it is then stopped).
        """
        if not self.alive:
            self.start()
        start = self.log_path.stat().st_size if self.log_path.exists() else 0
        try:
            self.proc.stdin.write(json.dumps(msg) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass   # died between jobs: the read below sees EOF
        reply = self._read(timeout)
        if reply is not None:
            return reply, "", ""
        if self.eof:   # the reply pipe closed: the process is dying (Blender's crash handler runs first)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._kill()
        if self.proc.poll() is None:
            self._kill()
            reason = f"timed out after {timeout:g} s"
        else:
            code = self.proc.returncode
            reason = f"Blender process died (exit status {code}{', signal ' + str(-code) if code < 0 else ''})"
        log = _tail(self.log_path, start)
        for crash in sorted(self.tmp.glob("*.crash.txt")) if self.tmp else []:   # Blender's own crash report
            log += f"\n--- {crash.name} ---\n" + _tail(crash)
        self.stop()
        return None, reason, log


@dataclass
class WorkerPool:
    """A few warm workers; `run(messages)` returns replies in order.

    size       number of Blender processes (each ~270 MB)
    timeout    seconds one job may take before its worker is killed
    """

    size: int = 1
    timeout: float = 120.0
    launcher: Launcher | None = None
    env: dict = field(default_factory=dict)
    incidents: list[Incident] = field(default_factory=list)

    def __post_init__(self):
        self.launcher = self.launcher or find_launcher()
        clean_stale_tmp()
        self._idle: queue.Queue = queue.Queue()
        self._workers = [Worker(self.launcher, env=self.env) for _ in range(max(1, int(self.size)))]
        for w in self._workers:
            self._idle.put(w)
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._closed = False

    @property
    def starts(self) -> int:
        """Blender processes started so far (1 per worker when nothing crashed)."""
        return sum(w.starts for w in self._workers)

    def _one(self, msg: dict) -> dict:
        with self._lock:
            job_id = next(self._ids)
        msg = {**msg, "id": job_id}
        worker = self._idle.get()
        try:
            for attempt in (1, 2):
                reply, reason, log = worker.call(msg, self.timeout)
                if reply is not None:
                    if reply.get("ok"):
                        return reply
                    raise BlenderJobError(f"Blender job {job_id} ({msg.get('kind')}) failed: {reply.get('error')}",
                                          reply.get("traceback", ""))
                with self._lock:
                    self.incidents.append(Incident(job_id, attempt, reason, log))
                if attempt == 2:
                    raise BlenderCrash(f"Blender job {job_id} ({msg.get('kind')}) {reason}, also on its retry", log)
            raise AssertionError("unreachable")
        finally:
            self._idle.put(worker)

    def run(self, messages: list[dict]) -> list[dict]:
        """Run messages on the workers (in parallel when size > 1); replies in input order.

        Raises the first BlenderJobError / BlenderCrash after every message has finished.
        """
        if self._closed:
            raise RuntimeError("this WorkerPool is closed")
        messages = list(messages)
        if len(messages) <= 1 or len(self._workers) == 1:
            return [self._one(m) for m in messages]
        with ThreadPoolExecutor(max_workers=len(self._workers)) as ex:
            futures = [ex.submit(self._one, m) for m in messages]
            errors = [f.exception() for f in futures]
            for e in errors:
                if e is not None:
                    raise e
            return [f.result() for f in futures]

    def defect(self, job: dict) -> dict:
        """Run one blender_scripts/defect.py job; returns its result dict."""
        return self.run([{"kind": "defect", "job": job}])[0]["result"]

    def script(self, path: str | os.PathLike, args: list[str] = ()) -> dict:
        return self.run([{"kind": "script", "path": str(path), "args": list(args)}])[0]

    def close(self) -> None:
        self._closed = True
        for w in self._workers:
            w.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
