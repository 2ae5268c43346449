"""Background processes tracked by pid files.

A pid file alone is not trusted (pids are reused): a process counts as ours only if it is alive,
not a zombie, and its command line contains a token unique to this stack (a path under local_dir).
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import subprocess
import time
from pathlib import Path


def _cmdline(pid: int) -> str | None:
    for _ in range(100):
        try:
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return None
        if state == "Z":  # exited; reap it if it is our child (the `stack` fixture starts children in-process)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            return None
        if raw:
            return raw.replace(b"\0", b" ").decode(errors="replace")
        time.sleep(0.01)  # empty while the process is in the middle of exec()
    return ""


def running_pid(pid_file: Path, token: str) -> int | None:
    """The pid recorded in ``pid_file`` if that process is alive and is the one we started."""
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    cmd = _cmdline(pid)
    return pid if cmd is not None and token in cmd else None


def port_free(host: str, port: int) -> bool:
    """True if nothing listens on (host, port): we could bind it ourselves."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    """True if something accepts TCP connections on (host, port)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def spawn(
    cmd: list[str],
    pid_file: Path,
    log_file: Path,
    cwd: Path,
    env: dict[str, str] | None = None,
    user: str | None = None,
) -> int:
    """Start ``cmd`` detached (own session, stdin closed, stdout+stderr appended to ``log_file``)
    and record its pid."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as log:
        log.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {' '.join(cmd)}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            user=user,
            group=user,
            extra_groups=[] if user else None,
        )
    pid_file.write_text(f"{proc.pid}\n")
    return proc.pid


def exit_status(pid: int) -> int | None:
    """The exit code of our own child ``pid`` if it has exited (reaping it), else None."""
    try:
        done, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return None
    return os.waitstatus_to_exitcode(status) if done else None


def stop(pid: int, token: str, timeout_s: float) -> bool:
    """SIGTERM, wait up to ``timeout_s``, then SIGKILL. True if it stopped gracefully."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        cmd = _cmdline(pid)
        if cmd is None or token not in cmd:
            return True
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return True
    while _cmdline(pid) is not None:
        time.sleep(0.05)
    return False


def last_line(path: Path, limit: int = 200) -> str:
    """The last non-empty line of a log file, shortened, for one-line error messages."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 8192))
            lines = [ln.strip() for ln in f.read().decode(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    if not lines:
        return ""
    line = lines[-1]
    return line if len(line) <= limit else line[: limit - 3] + "..."
