"""A warm interpreter for step jobs: jwst imported once, each job a forked child.

Importing jwst costs seconds per process and exiting an interpreter that has it
loaded costs most of a second more; with one short job per step per source that is
most of the work.  The server imports everything a step needs, warms the datamodel
machinery, then forks one child per job.  A job's ``python -m spec3flow.execute``
command connects to the server's Unix socket, hands over its stdout/stderr file
descriptors, working directory, environment and arguments, and exits with the
child's exit code.  The rules do not change; without a server (or on a cluster node
that cannot reach it) the same command runs the step in-process, with identical
results.
"""

from __future__ import annotations

import argparse
import array
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path

SOCKET_ENV = "SPEC3FLOW_WARM_SOCKET"
#: Command-line modules a job may ask the server to run.
SERVED_MODULES = ("spec3flow.execute", "spec3flow.qa")
MAX_FDS = 2
_HEADER_BYTES = 8


# ------------------------------------------------------------------ wire format
def _send_message(sock: socket.socket, payload: dict, fds: list[int] = ()) -> None:
    data = json.dumps(payload).encode()
    header = len(data).to_bytes(_HEADER_BYTES, "big")
    if fds:
        socket.send_fds(sock, [header], list(fds))
    else:
        sock.sendall(header)
    sock.sendall(data)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    chunks = []
    while n:
        chunk = sock.recv(n)
        if not chunk:
            raise ConnectionError("connection closed")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _recv_message(sock: socket.socket, with_fds: bool = False) -> tuple[dict, list[int]]:
    fds: list[int] = []
    if with_fds:
        header, fds, _, _ = socket.recv_fds(sock, _HEADER_BYTES, MAX_FDS)
        if len(header) < _HEADER_BYTES:
            header += _recv_exact(sock, _HEADER_BYTES - len(header))
    else:
        header = _recv_exact(sock, _HEADER_BYTES)
    size = int.from_bytes(header, "big")
    return json.loads(_recv_exact(sock, size)), fds


# ----------------------------------------------------------------------- client
def run_remote(argv: list[str], socket_path: str | None = None,
               module: str = "spec3flow.execute") -> int | None:
    """Run ``python -m <module> argv`` in the warm server; None if no server answers."""
    socket_path = socket_path or os.environ.get(SOCKET_ENV)
    if not socket_path or not os.path.exists(socket_path):
        return None
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(socket_path)
    except OSError:
        return None
    with sock:
        request = {"module": module, "argv": argv, "cwd": os.getcwd(), "env": dict(os.environ)}
        try:
            _send_message(sock, request, [sys.stdout.fileno(), sys.stderr.fileno()])
            # A server still importing jwst holds the connection until it can fork the
            # job; one that never forks it (it failed to start) closes it unanswered.
            accepted, _ = _recv_message(sock)
        except (OSError, ConnectionError, ValueError):
            return None  # the server did not take the job: run it here instead
        try:
            reply = accepted if "returncode" in accepted else _recv_message(sock)[0]
        except (OSError, ConnectionError, ValueError):
            print("spec3flow: the warm server lost this job (its process died)", file=sys.stderr)
            return 1
    return int(reply.get("returncode", 1))


# ----------------------------------------------------------------------- server
def warm_up() -> None:
    """Import and exercise what every step job needs, once, before any fork."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    import tempfile

    import jwst.pipeline  # noqa: F401  (imports every calwebb_spec3 step)
    from jwst.associations.lib import rules_level3_base  # noqa: F401
    from jwst.datamodels import ModelContainer, SourceModelContainer  # noqa: F401
    from jwst.exp_to_source import multislit_to_container  # noqa: F401
    from jwst.extract_1d import extract_1d_step  # noqa: F401
    from stdatamodels.jwst import datamodels

    from spec3flow import execute  # noqa: F401  (not qa: matplotlib would add ~23 MB to every job)

    # First model save/open pays one-time ASDF/schema set-up: pay it here.
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "warm_cal.fits")
        model = datamodels.SlitModel((4, 4))
        model.save(path)
        with datamodels.open(path) as reopened:
            reopened.data.sum()
    import gc

    gc.collect()
    gc.freeze()  # children share the imported heap and the collector skips it


def _run_child(conn: socket.socket, request: dict, fds: list[int], import_env: dict) -> None:
    """In the forked child: become the job's process, run it, report, exit."""
    code = 1
    try:
        _send_message(conn, {"accepted": os.getpid()})
        out_fd, err_fd = fds
        os.dup2(out_fd, 1)
        os.dup2(err_fd, 2)
        os.close(out_fd)
        os.close(err_fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        # Imports record their defaults in os.environ (CRDS does): keep those.
        for key, value in import_env.items():
            os.environ.setdefault(key, value)
        os.environ.pop(SOCKET_ENV, None)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        import importlib

        module = request.get("module", "spec3flow.execute")
        if module not in SERVED_MODULES:
            raise ValueError(f"the warm server does not run {module}")
        code = importlib.import_module(module).main(request["argv"], allow_remote=False)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 - the job's own traceback goes to its log
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
            if _LEDGER is not None:
                try:
                    with open(_LEDGER, "a") as fh:
                        fh.write(json.dumps(_memory_record()) + "\n")
                except OSError:
                    pass
            _send_message(conn, {"returncode": code})
        finally:
            os._exit(code)


#: The ledger of this server (children write their memory line into it too).
_LEDGER: Path | None = None


def _memory_record() -> dict:
    """A finishing job's memory (kernel counters, MiB): its peak RSS (``VmHWM``) and, at
    the end, how much of its RSS is pages it shares with the server (jwst and the other
    imports, copy-on-write). ``own_peak_mb`` = peak RSS - shared: what the job itself
    needed, i.e. what each extra parallel job costs on top of one server."""
    fields: dict[str, float] = {}
    for name in ("/proc/self/status", "/proc/self/smaps_rollup"):
        try:
            with open(name) as fh:
                for line in fh:
                    key, _, value = line.partition(":")
                    if value.strip().endswith("kB"):
                        fields[key] = int(value.split()[0]) / 1024
        except (OSError, ValueError):
            return {}
    shared = fields.get("Shared_Clean", 0.0) + fields.get("Shared_Dirty", 0.0)
    peak = fields.get("VmHWM", float("nan"))
    return {"pid": os.getpid(), "kind": "memory", "peak_rss_mb": round(peak, 1),
            "shared_mb": round(shared, 1), "pss_mb": round(fields.get("Pss", float("nan")), 1),
            "own_peak_mb": round(peak - shared, 1)}


def _record(ledger: Path | None, request: dict, wall: float, status: int, usage,
            pid: int | None = None) -> None:
    """One JSON line per job, written by the server when it reaps the job (the job adds
    its own ``kind: memory`` line, same ``pid``, just before it ends)."""
    if ledger is None:
        return
    argv = request.get("argv", [])
    record = {
        "module": request.get("module"),
        "step": argv[0] if argv else None,
        "outputs": argv[argv.index("--outputs") + 1] if "--outputs" in argv else None,
        "wall_s": round(wall, 3),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
        "max_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "pid": pid,
        "returncode": os.waitstatus_to_exitcode(status),
    }
    with open(ledger, "a") as fh:
        fh.write(json.dumps(record) + "\n")


def serve(socket_path: Path, idle_timeout: float = 1800.0, parent_pid: int | None = None,
          ledger: Path | None = None) -> None:
    global _LEDGER
    _LEDGER = ledger
    # Listen first, then import: jobs that start meanwhile wait in the backlog instead of
    # importing jwst themselves, and the caller need not wait for the imports.
    socket_path.parent.mkdir(parents=True, exist_ok=True)
    if socket_path.exists():
        socket_path.unlink()
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(os.fspath(socket_path))
    server.listen(256)
    server.settimeout(0.25)
    children: dict[int, tuple[float, dict]] = {}
    stop = False

    def request_stop(*_):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        before = dict(os.environ)
        warm_up()
        import_env = {k: v for k, v in os.environ.items() if before.get(k) != v}
        last_activity = time.monotonic()
        while not stop:
            _reap(children, ledger, block=False)
            if parent_pid and not _alive(parent_pid):
                break
            if not children and time.monotonic() - last_activity > idle_timeout:
                break
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                continue
            last_activity = time.monotonic()
            try:
                conn.settimeout(30)
                request, fds = _recv_message(conn, with_fds=True)
                conn.settimeout(None)
            except (OSError, ConnectionError, ValueError):
                conn.close()
                continue
            if request.get("command") == "shutdown":
                for fd in fds:
                    os.close(fd)
                conn.close()
                break
            if len(fds) != 2:
                for fd in fds:
                    os.close(fd)
                conn.close()
                continue
            pid = os.fork()
            if pid == 0:
                server.close()
                _run_child(conn, request, fds, import_env)
            children[pid] = (time.monotonic(), request)
            for fd in fds:
                os.close(fd)
            conn.close()
    finally:
        server.close()
        if socket_path.exists():
            socket_path.unlink()
        _reap(children, ledger, block=True)


def _reap(children: dict, ledger: Path | None, block: bool) -> None:
    for pid in list(children):
        try:
            done, status, usage = os.wait4(pid, 0 if block else os.WNOHANG)
        except ChildProcessError:
            children.pop(pid, None)
            continue
        if done:
            started, request = children.pop(pid)
            _record(ledger, request, time.monotonic() - started, status, usage, pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def shutdown(socket_path: Path) -> None:
    if not socket_path.exists():
        return
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(os.fspath(socket_path))
            _send_message(sock, {"command": "shutdown"}, [0, 0])
    except OSError:
        pass


def start_background(socket_path: Path, log_path: Path, ledger: Path | None = None,
                     wait_s: float = 60.0):
    """Start a server in its own session; return once it listens (jobs sent before its
    imports finish wait for them).

    Returns the server's ``Popen`` (None if it did not come up): waiting for it after
    :func:`shutdown` reaps it, so its jobs' CPU time counts as the caller's children's.
    """
    import subprocess

    log_path.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "spec3flow.warm", "serve", "--socket", os.fspath(socket_path),
           "--parent-pid", str(os.getpid())]
    if ledger is not None:
        cmd += ["--ledger", os.fspath(ledger)]
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and proc.poll() is None:
        if socket_path.exists():
            return proc
        time.sleep(0.1)
    proc.kill()
    proc.wait()
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m spec3flow.warm", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_serve = sub.add_parser("serve", help="run the server in the foreground")
    p_serve.add_argument("--socket", type=Path, required=True)
    p_serve.add_argument("--idle-timeout", type=float, default=1800.0)
    p_serve.add_argument("--parent-pid", type=int, default=None, help="exit when this process ends")
    p_serve.add_argument("--ledger", type=Path, default=None, help="append one JSON line per job")
    p_stop = sub.add_parser("stop", help="ask a running server to exit")
    p_stop.add_argument("--socket", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.command == "serve":
        serve(args.socket, args.idle_timeout, args.parent_pid, args.ledger)
    else:
        shutdown(args.socket)
    return 0


if __name__ == "__main__":
    sys.exit(main())
