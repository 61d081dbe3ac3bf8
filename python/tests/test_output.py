"""Worker stdout and stderr reach the host line by line, prefixed with the
worker's name and pid, or handed to a callback."""

import subprocess
import sys
import textwrap
import threading

from conftest import eventually, write_worker
from titan_pm.sync import ProcessManager as SyncProcessManager

PRINTER = (
    "import sys\nfrom titan_pm import process, public\n"
    "@process(name='printer')\nclass Printer:\n"
    "    @public\n    def say(self, line):\n        print(line)\n        print('err: ' + line, file=sys.stderr)\n        return True\n"
)


def test_output_lines_go_to_a_callback(tmp_path):
    lines = []
    lock = threading.Lock()

    def collect(stream, name, pid, line):
        with lock:
            lines.append((stream, name, pid, line))

    with SyncProcessManager(output=collect) as pm:
        p = pm.spawn(write_worker(tmp_path, "printer.py", PRINTER))
        pid = pm.get_process(p.process_id)["pid"]
        assert p.say("hello")
        assert eventually(lambda: len(lines) >= 2 or (p.say("again") and False), limit=5.0)
    assert ("stdout", "printer", pid, "hello") in lines
    assert ("stderr", "printer", pid, "err: hello") in lines


def test_output_is_prefixed_with_name_and_pid(tmp_path):
    worker = write_worker(tmp_path, "printer.py", PRINTER)
    host = tmp_path / "host.py"
    host.write_text(
        textwrap.dedent(
            f"""
            from titan_pm.sync import ProcessManager
            with ProcessManager() as pm:
                p = pm.spawn({worker!r})
                p.say("hello")
                print("pid", pm.get_process(p.process_id)["pid"], flush=True)
            """
        )
    )
    r = subprocess.run([sys.executable, str(host)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    pid = [l for l in r.stdout.splitlines() if l.startswith("pid ")][0].split()[1]
    assert f"[printer:{pid}] hello" in r.stdout
    assert f"[printer:{pid}] err: hello" in r.stderr
