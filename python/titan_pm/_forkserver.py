"""The Python fork server a titan-pm host starts once per manager (core's
`host/forkserver.rs` owns when and how; this file only does what it is asked).

It imports what a worker child needs (`titan_pm.worker` and the modules it
loads, the native agent), then waits on its control socket (descriptor 3, a
`SOCK_SEQPACKET` pair whose other end the host holds). Each request is one
message: JSON `{"id", "argv", "env"}` with the child's stdout, stderr and
(optional) IPC socket passed as descriptors. It forks; the child makes itself
a process group leader, asks for SIGKILL when the fork server dies (which dies
with the host), puts the descriptors at 1, 2 and 3, replaces its environment
with the one sent and runs the worker entry exactly as `python -m
titan_pm.worker` would. The server answers `{"id", "pid"}` (or `{"id",
"error"}`) and, when a child ends, `{"exit": pid, "code", "signal"}`. It is
the children's parent, but it learns of an exit without reaping
(`waitid(..., WNOWAIT)`): the child stays a zombie, so its pid cannot be
reused while the host may still signal it, until the host sends `{"reap":
pid}` (once it has recorded the exit and will not use the pid again).

When the host closes the socket the server stops taking requests, reaps
without waiting for the host any more, and exits once its children have ended
(the host ends them at shutdown; if the host died they get SIGKILL from the
kernel).
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import sys

# A request bigger than this is refused by the host before it is sent.
MAX_REQUEST = 1 << 20
# stdout, stderr, the IPC socket.
MAX_FDS = 3


# libc's prctl, looked up once by the server (a child only calls it).
_prctl = None


def _preload() -> None:
    """What every worker child does before it reads its target, done once here: the imports
    and the lookup of prctl."""
    global _prctl
    import asyncio  # noqa: F401
    import ctypes

    from . import _context, _layers, _loop, _native, _runtime, _values, decorators, errors, given, policies, worker  # noqa: F401

    _prctl = ctypes.CDLL(None, use_errno=True).prctl
    PR_GET_DUMPABLE = 3
    _prctl(PR_GET_DUMPABLE, 0, 0, 0, 0)  # the first call through ctypes sets up the conversions


def _prctl_pdeathsig() -> None:
    PR_SET_PDEATHSIG = 1
    if _prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        os._exit(1)


def _set_environ(env: dict) -> None:
    """Makes the environment exactly `env`, touching only what differs from the server's."""
    for key in [k for k in os.environ if k not in env]:
        del os.environ[key]
    for key, value in env.items():
        if os.environ.get(key) != value:
            os.environ[key] = value


def _child(server_pid: int, argv: list, env: dict, fds: list, ctl: socket.socket, wake: int) -> None:
    """Runs in the forked child; never returns."""
    code = 1
    try:
        os.setpgid(0, 0)
        _prctl_pdeathsig()
        if os.getppid() != server_pid:
            os._exit(1)  # the server died between fork and prctl
        signal.set_wakeup_fd(-1)
        # As a fresh interpreter has them.
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(fds[0], 1)
        os.dup2(fds[1], 2)
        if len(fds) > 2:
            os.dup2(fds[2], 3)  # replaces the control socket's descriptor
        else:
            os.close(3)
        ctl.detach()
        os.closerange(4, os.sysconf("SC_OPEN_MAX") if os.sysconf("SC_OPEN_MAX") > 0 else 1024)
        _set_environ(env)
        from . import worker

        sys.argv = [worker.__file__] + argv
        code = worker.main(sys.argv)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _send(ctl: socket.socket, message: dict) -> bool:
    try:
        ctl.send(json.dumps(message).encode())
        return True
    except OSError:
        return False


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, 0)  # a zombie already: returns at once
    except ChildProcessError:
        pass


def main() -> int:
    ctl = socket.socket(fileno=3)
    _preload()
    # What is loaded now is shared with every child: keep the collector off those pages so
    # forked children do not copy them on their first collection.
    import gc

    gc.freeze()
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sel = selectors.DefaultSelector()
    sel.register(ctl, selectors.EVENT_READ)
    sel.register(wake_r, selectors.EVENT_READ)
    server_pid = os.getpid()
    running: set = set()  # forked, not known to have ended
    reported: set = set()  # ended and reported, kept as zombies until the host says "reap"
    open_ = True
    while open_ or running or reported:
        child_ended = False
        for key, _ in sel.select():
            if key.fileobj is not ctl:
                child_ended = True
                try:
                    while os.read(wake_r, 512):
                        pass
                except BlockingIOError:
                    pass
                continue
            try:
                data, ancdata, _flags, _addr = ctl.recvmsg(MAX_REQUEST, socket.CMSG_SPACE(MAX_FDS * 4))
            except OSError:
                data, ancdata = b"", []
            if not data:
                # The host is gone or done with the pids: nobody can act on them any more.
                open_ = False
                sel.unregister(ctl)
                for pid in reported:
                    _reap(pid)
                reported.clear()
                continue
            fds: list = []
            for level, kind, payload in ancdata:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds.extend(int.from_bytes(payload[i : i + 4], sys.byteorder) for i in range(0, len(payload) - len(payload) % 4, 4))
            message = json.loads(data)
            if "reap" in message:
                for fd in fds:
                    os.close(fd)
                pid = message["reap"]
                if pid in reported:
                    reported.discard(pid)
                    _reap(pid)
                continue
            sys.stdout.flush()
            sys.stderr.flush()
            try:
                pid = os.fork()
            except OSError as e:
                for fd in fds:
                    os.close(fd)
                _send(ctl, {"id": message["id"], "error": f"fork failed: {e}"})
                continue
            if pid == 0:
                _child(server_pid, message["argv"], dict(message["env"]), fds, ctl, wake_r)
            for fd in fds:
                os.close(fd)
            running.add(pid)
            _send(ctl, {"id": message["id"], "pid": pid})
        if not child_ended:
            continue
        # Learn who ended here, never in the signal handler (a child's pid is always sent before its
        # exit), and leave it a zombie (WNOWAIT) while the host may still signal its pid or group.
        for pid in list(running):
            try:
                info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | (os.WNOWAIT if open_ else 0))
            except ChildProcessError:
                running.discard(pid)
                continue
            if info is None:
                continue
            running.discard(pid)
            exited = info.si_code == os.CLD_EXITED
            if open_:
                reported.add(pid)
                _send(ctl, {"exit": pid, "code": info.si_status if exited else None, "signal": None if exited else info.si_status})
    return 0


if __name__ == "__main__":
    os._exit(main())
