"""The warm server's client: a job runs in the server once the server took it, and runs
in its own process (returns None) when the server never took it."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

from spec3flow import warm


def _fake_server(path: Path, replies: list[dict]):
    """A one-connection server: reads a job request, sends ``replies``, closes."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(os.fspath(path))
    server.listen(1)

    def serve():
        conn, _ = server.accept()
        with conn:
            request, fds = warm._recv_message(conn, with_fds=True)
            for fd in fds:
                os.close(fd)
            assert request["argv"] == ["--help"]
            for reply in replies:
                warm._send_message(conn, reply)
        server.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread


def test_job_the_server_never_took_runs_here(tmp_path):
    """A server that closes the connection unanswered (it died importing jwst): fall back."""
    thread = _fake_server(tmp_path / "s.sock", [])
    assert warm.run_remote(["--help"], os.fspath(tmp_path / "s.sock")) is None
    thread.join(5)


def test_job_lost_after_the_server_took_it_fails(tmp_path, capfd):
    """Accepted, then no exit code (the forked job died): the job fails, it is not rerun."""
    thread = _fake_server(tmp_path / "s.sock", [{"accepted": 123}])
    assert warm.run_remote(["--help"], os.fspath(tmp_path / "s.sock")) == 1
    assert "lost this job" in capfd.readouterr().err
    thread.join(5)


def test_exit_code_of_a_taken_job(tmp_path):
    thread = _fake_server(tmp_path / "s.sock", [{"accepted": 123}, {"returncode": 3}])
    assert warm.run_remote(["--help"], os.fspath(tmp_path / "s.sock")) == 3
    thread.join(5)


def test_no_server_no_socket(tmp_path):
    assert warm.run_remote(["--help"], os.fspath(tmp_path / "none.sock")) is None


def test_server_listens_before_its_imports_and_then_runs_queued_jobs(tmp_path):
    """start_background returns once the socket listens; a job sent at once waits for the
    imports and runs in a forked child (the ledger has its line)."""
    socket_path, ledger = tmp_path / "warm.sock", tmp_path / "jobs.jsonl"
    server = warm.start_background(socket_path, tmp_path / "warm.log", ledger)
    assert server is not None, (tmp_path / "warm.log").read_text()
    try:
        code = warm.run_remote(["--help"], os.fspath(socket_path))
    finally:
        warm.shutdown(socket_path)
        server.wait(timeout=120)
    assert code == 0  # argparse's --help exits 0 in the child
    assert '"step": "--help"' in ledger.read_text()


def _workflow(calls):
    from types import SimpleNamespace

    from snakemake_interface_executor_plugins.settings import ExecMode

    return SimpleNamespace(execute=lambda **kwargs: calls.append(("execute", kwargs)) or True,
                           exec_mode=ExecMode.DEFAULT,
                           execution_settings=SimpleNamespace(no_hooks=False))


def _plugin(**settings):
    from types import SimpleNamespace

    common = dict(local_exec=True, dryrun_exec=False, touch_exec=False) | settings
    return SimpleNamespace(common_settings=SimpleNamespace(**common))


def test_server_starts_when_snakemake_executes_locally(monkeypatch):
    """Before the DAG is built: Workflow.execute is wrapped; a dry run, --touch or a cluster
    executor start nothing (start_warm_interpreter decides from the flags it is given)."""
    from spec3flow import workflow_support as support

    monkeypatch.delenv("SPEC3FLOW_PLAIN_SNAKEMAKE", raising=False)
    calls = []
    monkeypatch.setattr(support, "start_warm_interpreter",
                        lambda config, workflow, local_exec, dryrun: calls.append((local_exec, dryrun)))
    for settings, expected in [({}, (True, False)), ({"dryrun_exec": True}, (True, True)),
                               ({"touch_exec": True}, (True, True)),
                               ({"local_exec": False}, (False, False))]:
        calls.clear()
        workflow = _workflow(calls)
        support.start_warm_interpreter_early({}, workflow)
        assert workflow.execute(executor_plugin=_plugin(**settings), updated_files=None) is True
        assert calls[0] == expected and calls[1][0] == "execute"
