"""The Python fork server (core's `host/forkserver.rs`): `.py` children are forked
from one pre-imported interpreter per manager, and keep a plain spawn's
guarantees: their own process group and environment, exit status and stderr
reported, nothing left when the host dies; `fork_server=False`, or an
interpreter variable in the spawn's `env`, starts a fresh interpreter."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from titan_pm import ConfigError, ProcessCrashedError, SpawnError
from titan_pm.sync import ProcessManager

from conftest import alive, eventually

PROBE = textwrap.dedent(
    """
    import os, sys
    from titan_pm import process, public

    @process(name="probe", version="1.0.0")
    class Probe:
        @public
        def facts(self, key=None):
            return {
                "pid": os.getpid(),
                "ppid": os.getppid(),
                "pgid": os.getpgid(0),
                "env": os.environ.get(key) if key else None,
                "argv": sys.argv[1:],
                "fds": sorted(int(f) for f in os.listdir("/proc/self/fd")),
            }

        @public
        def shout(self, text):
            print(text, file=sys.stderr, flush=True)
            return True

        @public
        def quit_with(self, code):
            sys.stdout.flush()
            os._exit(code)
    """
)


@pytest.fixture
def probe(tmp_path):
    path = tmp_path / "probe.py"
    path.write_text(PROBE)
    return str(path)


def test_a_python_child_is_forked_from_the_server_into_its_own_group(probe):
    with ProcessManager(output="ignore") as pm:
        a = pm.spawn(probe).facts()
        b = pm.spawn(probe).facts()
    # Both come from the same fork server, not from this host, each leading its own group.
    assert a["ppid"] == b["ppid"] != os.getpid()
    assert a["pgid"] == a["pid"] and b["pgid"] == b["pid"]
    # Only stdin, stdout, stderr, the IPC socket (3) and what the worker opened itself: the server's
    # control socket and wake-up pipe are not inherited.
    assert a["fds"][:4] == [0, 1, 2, 3]


def test_fork_server_false_starts_a_fresh_interpreter(probe):
    with ProcessManager(output="ignore", fork_server=False) as pm:
        info = pm.spawn(probe).facts()
    assert info["ppid"] == os.getpid()


def test_fork_server_must_be_a_bool():
    with pytest.raises(ConfigError, match="fork_server"):
        ProcessManager(fork_server="yes")


def test_the_child_gets_the_spawn_env_and_args(probe, monkeypatch):
    monkeypatch.setenv("TITAN_TEST_HOST_VAR", "from the host")
    with ProcessManager(output="ignore") as pm:
        w = pm.spawn(probe, env={"TITAN_TEST_VAR": "given"})
        given = w.facts("TITAN_TEST_VAR")
        host = w.facts("TITAN_TEST_HOST_VAR")
        other = pm.spawn(probe).facts("TITAN_TEST_VAR")
    assert given["ppid"] != os.getpid(), "expected a forked child"
    assert given["env"] == "given"
    assert host["env"] == "from the host"
    assert other["env"] is None
    assert given["argv"] == [probe]


def test_an_interpreter_variable_in_env_means_a_fresh_interpreter(probe):
    with ProcessManager(output="ignore") as pm:
        info = pm.spawn(probe, env={"PYTHON_TITAN_TEST_VAR": "1"}).facts("PYTHON_TITAN_TEST_VAR")
    assert info["ppid"] == os.getpid()
    assert info["env"] == "1"


def test_a_forked_childs_exit_status_and_stderr_reach_the_host(probe, tmp_path):
    lines = []
    with ProcessManager(output=lambda stream, name, pid, line: lines.append((stream, line)), restart_policy=False) as pm:
        w = pm.spawn(probe)
        assert w.facts()["ppid"] != os.getpid()
        assert w.shout("hello from the child")
        with pytest.raises(ProcessCrashedError) as e:
            w.quit_with(7)
        assert e.value.exit_code == 7
    assert ("stderr", "hello from the child") in lines


def test_a_target_that_fails_to_load_is_a_spawn_error_with_its_stderr(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("raise RuntimeError('broken at import')\n")
    with ProcessManager(output="ignore") as pm:
        with pytest.raises(SpawnError) as e:
            pm.spawn(str(bad))
    assert "broken at import" in str(e.value)


def test_neither_server_nor_children_outlive_a_killed_host(probe, tmp_path):
    host = tmp_path / "host.py"
    host.write_text(
        textwrap.dedent(
            f"""
            import time
            from titan_pm.sync import ProcessManager
            pm = ProcessManager(output="ignore")
            info = [pm.spawn({probe!r}).facts() for _ in range(2)]
            print(info[0]["pid"], info[1]["pid"], info[0]["ppid"], flush=True)
            time.sleep(60)
            """
        )
    )
    p = subprocess.Popen([sys.executable, str(host)], stdout=subprocess.PIPE, text=True)
    try:
        pids = [int(x) for x in p.stdout.readline().split()]
        assert len(pids) == 3 and pids[2] != p.pid
        assert all(alive(pid) for pid in pids)
        os.kill(p.pid, signal.SIGKILL)
        p.wait(10)
        assert eventually(lambda: not any(alive(pid) for pid in pids), limit=5.0), "a worker or the fork server outlived its host"
    finally:
        p.kill()


def _state(pid):
    """The process's state letter (`Z` for a zombie), or None once it is reaped."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return None


def test_the_server_keeps_an_ended_child_until_the_host_lets_it_reap():
    # The server's protocol, driven by hand: an ended child stays a zombie (its pid cannot be
    # reused, so the host may still signal it or its group) until the host sends "reap".
    import json
    import socket

    host, server = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    start = "import os, sys; os.dup2(int(sys.argv[1]), 3); os.execv(sys.executable, [sys.executable, '-m', 'titan_pm._forkserver'])"
    p = subprocess.Popen([sys.executable, "-c", start, str(server.fileno())], pass_fds=(server.fileno(),))
    server.close()
    host.settimeout(30)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        env = {"PATH": os.environ.get("PATH", ""), "TITAN_IPC_FD": "3"}
        # No IPC socket and a bad argument: the worker prints its usage and exits with 2.
        socket.send_fds(host, [json.dumps({"id": 1, "argv": ["--bad"], "env": env}).encode()], [null, null])
        forked = json.loads(host.recv(4096))
        assert forked["id"] == 1
        pid = forked["pid"]
        ended = json.loads(host.recv(4096))
        assert ended == {"exit": pid, "code": 2, "signal": None}
        assert _state(pid) == "Z", "the server reaped the child before the host let it"
        # It stays so: the server waits for the host, not for a timer.
        host.send(json.dumps({"reap": pid + 1}).encode())  # not an ended child of this server: ignored
        time.sleep(0.3)
        assert _state(pid) == "Z"
        host.send(json.dumps({"reap": pid}).encode())
        assert eventually(lambda: _state(pid) is None, limit=10.0), "the server did not reap the child"
        # The host closing its end ends the server (it has no children left).
        host.close()
        assert p.wait(30) == 0
    finally:
        os.close(null)
        host.close()
        p.kill()
        p.wait()


def test_the_server_reaps_an_ended_forked_child_once_the_host_saw_its_exit(probe):
    with ProcessManager(output="ignore", restart_policy=False) as pm:
        w = pm.spawn(probe)
        pid = w.facts()["pid"]
        with pytest.raises(ProcessCrashedError):
            w.quit_with(3)
        # The host acknowledged the exit, so the server reaped it: no zombie is left while the
        # manager runs.
        assert eventually(lambda: _state(pid) is None, limit=10.0), f"pid {pid} is left as {_state(pid)}"
        w2 = pm.spawn(probe)
        pid2 = w2.facts()["pid"]
        pm.kill(w2.process_id)
        assert eventually(lambda: _state(pid2) is None, limit=10.0), f"pid {pid2} is left as {_state(pid2)}"


def _fork_servers():
    """This process's fork servers that are running."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if b"titan_pm._forkserver" in cmdline and int(fields[1]) == os.getpid() and fields[0] != "Z":
            found.append(int(entry))
    return found


def test_a_python_manager_starts_its_fork_server_before_the_first_spawn(probe):
    # Other tests' managers may still have servers: look only at the ones that appear. The server
    # process exists once the manager's constructor returned (started, not waited for).
    before = set(_fork_servers())
    with ProcessManager(output="ignore", fork_server=False):
        assert set(_fork_servers()) - before == set()
    with ProcessManager(output="ignore", isolation="none"):
        assert set(_fork_servers()) - before == set()
    with ProcessManager(output="ignore") as pm:
        started = set(_fork_servers()) - before
        assert len(started) == 1, "a Python manager did not start its fork server with itself"
        assert pm.spawn(probe).facts()["ppid"] in started
