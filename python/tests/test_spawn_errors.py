"""Bad targets give a SpawnError that says what is wrong (with the worker's
stderr tail where there is one) and leave nothing running."""

import pytest

from conftest import CALCULATOR, WORKERS, write_worker
from titan_pm import SpawnError
from titan_pm.sync import ProcessManager as SyncProcessManager

TWO_CLASSES = (
    "from titan_pm import process, public\n"
    "@process(name='a')\nclass Alpha:\n    @public\n    def who(self):\n        return 'alpha'\n"
    "@process(name='b')\nclass Beta:\n    @public\n    def who(self):\n        return 'beta'\n"
)


@pytest.fixture
def pm():
    with SyncProcessManager() as pm:
        yield pm


def test_a_missing_file(pm, tmp_path):
    with pytest.raises(SpawnError, match="no-such-worker.py"):
        pm.spawn(str(tmp_path / "no-such-worker.py"))
    assert pm.list_processes() == []


def test_a_file_without_a_process_class(pm, tmp_path):
    worker = write_worker(tmp_path, "plain.py", "class Helper:\n    pass\n")
    with pytest.raises(SpawnError) as e:
        pm.spawn(worker)
    assert "no @process class in plain.py (found: Helper)" in str(e.value)
    assert "no @process class" in e.value.stderr_tail


def test_several_process_classes_need_a_selector(pm, tmp_path):
    worker = write_worker(tmp_path, "two.py", TWO_CLASSES)
    with pytest.raises(SpawnError, match=r"several @process classes in two.py \(Alpha, Beta\)"):
        pm.spawn(worker)
    assert pm.spawn(f"{worker}:Beta").who() == "beta"
    assert pm.spawn(f"{worker}:Alpha").who() == "alpha"
    with pytest.raises(SpawnError, match=r"no class Gamma in two.py \(found: Alpha, Beta\)"):
        pm.spawn(f"{worker}:Gamma")


def test_a_syntax_error_shows_in_the_spawn_error(pm, tmp_path):
    worker = write_worker(tmp_path, "broken.py", "from titan_pm import process\ndef oops(:\n    pass\n")
    with pytest.raises(SpawnError) as e:
        pm.spawn(worker)
    assert "SyntaxError" in str(e.value) and "broken.py" in str(e.value)
    assert "SyntaxError" in e.value.stderr_tail


def test_an_init_that_raises_is_a_spawn_error_with_its_traceback(pm):
    with pytest.raises(SpawnError) as e:
        pm.spawn(CALCULATOR, dependencies={"fail": "no database"})
    message = str(e.value)
    assert "init raised RuntimeError: init failed on purpose: no database" in message
    assert "Traceback" in message and "in init" in message
    assert pm.list_processes() == []


def test_an_init_that_raises_in_a_thread_worker(tmp_path):
    with SyncProcessManager(isolation="worker") as pm:
        with pytest.raises(SpawnError, match="init failed on purpose"):
            pm.spawn(CALCULATOR, dependencies={"fail": "x"})
        with pytest.raises(SpawnError, match="no @process class"):
            pm.spawn(write_worker(tmp_path, "plain.py", "class Helper:\n    pass\n"))


def test_a_typescript_target_names_the_compiled_file(pm, tmp_path):
    ts = tmp_path / "calc.ts"
    ts.write_text("export default class Calc {}\n")
    with pytest.raises(SpawnError, match=r"compile it and spawn .*calc\.js"):
        pm.spawn(str(ts))


def test_a_worker_python_without_titan_pm_says_how_to_fix_it(tmp_path):
    import shutil

    python = shutil.which("python3", path="/usr/bin:/bin") or shutil.which("python3")
    if python is None:
        pytest.fail("no python3 on PATH")
    import subprocess

    has_it = subprocess.run([python, "-c", "import titan_pm"], capture_output=True).returncode == 0
    if has_it:
        pytest.skip(f"{python} can import titan_pm")
    with SyncProcessManager(python=python) as pm, pytest.raises(SpawnError, match="cannot import titan_pm"):
        pm.spawn(CALCULATOR)
