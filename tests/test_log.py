"""brewnet.log: glog's environment variables (GLOG_minloglevel, GLOG_logtostderr,
GLOG_stderrthreshold, GLOG_log_dir) honoured as glog honours them, glog's file names and
symlinks, and INFO lines kept out of notebook cells as pycaffe's are."""

import io
import os
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

import brewnet.log as blog
from brewnet.log import GlogFlags, in_notebook_kernel, init_log

ROOT = Path(__file__).resolve().parents[1]

# A pycaffe-style script: the environment is set before the import, as public scripts do.
SCRIPT = """
import os, sys
os.environ.update(dict(arg.split("=", 1) for arg in sys.argv[1:]))
import brewnet as caffe
from brewnet.log import log
caffe.log("an info line")
log.warning("a warning line")
log.error("an error line")
print("IPython imported:", "IPython" in sys.modules)
"""


def run_script(tmp_path: Path, *env: str) -> subprocess.CompletedProcess:
    script = tmp_path / "train_net.py"
    script.write_text(SCRIPT)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("GLOG_")}
    environ["PYTHONPATH"] = str(ROOT)
    return subprocess.run([sys.executable, str(script), *env], capture_output=True, text=True,
                          env=environ, cwd=tmp_path, timeout=120, check=True)


def severities(text: str) -> str:
    """The severity letters of the glog lines in ``text``, in order ("IWE")."""
    return "".join(m.group(1) for m in re.finditer(r"^([IWEF])\d{4} ", text, re.M))


def test_flags_read_as_glog_reads_them():
    """Integers as given; booleans true when they start with t, y or 1 (glog's EnvToBool,
    empty included); values glog's rules cannot read are reported and keep the default."""
    flags, problems = GlogFlags.from_env({
        "GLOG_minloglevel": "2", "GLOG_logtostderr": "true", "GLOG_alsologtostderr": "0",
        "GLOG_stderrthreshold": "1", "GLOG_log_dir": "/logs"})
    assert flags == GlogFlags(2, True, False, 1, "/logs") and problems == []
    assert GlogFlags.from_env({"GLOG_logtostderr": ""})[0].logtostderr
    flags, problems = GlogFlags.from_env({"GLOG_minloglevel": "two",
                                          "GLOG_logtostderr": "maybe"})
    assert flags == GlogFlags()
    assert problems[0].startswith("GLOG_minloglevel is 'two'; glog's severities are 0 (INFO)")
    assert problems[1] == "GLOG_logtostderr is 'maybe'; set it to 1 or 0 (read as 0)"


def test_default_is_every_line_on_stderr_without_importing_ipython(tmp_path):
    """No GLOG_ variables: every line on stderr, as pycaffe's glog before InitGoogleLogging;
    importing brewnet does not import IPython to look for a notebook."""
    done = run_script(tmp_path)
    assert severities(done.stderr) == "IWE"
    assert "IPython imported: False" in done.stdout


def test_minloglevel_set_before_import_silences_lower_severities(tmp_path):
    """``os.environ['GLOG_minloglevel'] = '2'`` before ``import caffe`` (many public
    scripts): INFO and WARNING lines are dropped."""
    assert severities(run_script(tmp_path, "GLOG_minloglevel=2").stderr) == "E"
    assert severities(run_script(tmp_path, "GLOG_minloglevel=1").stderr) == "WE"
    assert severities(run_script(tmp_path, "GLOG_minloglevel=4").stderr) == ""


def test_log_dir_writes_glog_files_and_symlinks(tmp_path):
    """GLOG_log_dir: ``<program>.<host>.<user>.log.<SEVERITY>.<yyyymmdd-hhmmss>.<pid>``
    files, each with its severity and those above, after glog's header, a
    ``<program>.<SEVERITY>`` symlink to each; stderr gets ERROR and above
    (GLOG_stderrthreshold's default, 2)."""
    logs = tmp_path / "logs"
    logs.mkdir()
    done = run_script(tmp_path, f"GLOG_log_dir={logs}")
    assert severities(done.stderr) == "E"
    expected = {"INFO": "IWE", "WARNING": "WE", "ERROR": "E"}
    for severity, letters in expected.items():
        link = logs / f"train_net.py.{severity}"
        assert link.is_symlink()
        target = os.readlink(link)
        assert re.fullmatch(rf"train_net\.py\.[^.]+\.[^.]+\.log\.{severity}\.\d{{8}}-\d{{6}}\.\d+",
                            target)
        text = (logs / target).read_text()
        assert text.startswith("Log file created at: ")
        assert "Log line format: [IWEF]mmdd hh:mm:ss.uuuuuu threadid file:line] msg\n" in text
        assert severities(text) == letters
    assert not (logs / "train_net.py.FATAL").exists()  # created on first use only


def test_stderrthreshold_copies_lines_at_or_above_it_to_stderr(tmp_path):
    """With files, GLOG_stderrthreshold=1 copies WARNING and above to stderr, 0 every line."""
    logs = tmp_path / "logs"
    logs.mkdir()
    assert severities(run_script(tmp_path, f"GLOG_log_dir={logs}",
                                 "GLOG_stderrthreshold=1").stderr) == "WE"
    assert severities(run_script(tmp_path, f"GLOG_log_dir={logs}",
                                 "GLOG_stderrthreshold=0").stderr) == "IWE"


def test_logtostderr_sends_everything_to_stderr_and_no_files(tmp_path):
    """GLOG_logtostderr=1 wins over GLOG_log_dir: every line on stderr, no file written."""
    logs = tmp_path / "logs"
    logs.mkdir()
    done = run_script(tmp_path, f"GLOG_log_dir={logs}", "GLOG_logtostderr=1")
    assert severities(done.stderr) == "IWE"
    assert list(logs.iterdir()) == []


def test_unwritable_log_dir_and_bad_values_are_said_once(tmp_path):
    """A GLOG_log_dir that does not exist and an unreadable GLOG_minloglevel are each one
    warning line naming the variable; the log goes on to stderr."""
    done = run_script(tmp_path, f"GLOG_log_dir={tmp_path / 'missing'}", "GLOG_minloglevel=x")
    assert f"log folder '{tmp_path / 'missing'}' does not exist or is not writable" in done.stderr
    assert "GLOG_minloglevel is 'x'" in done.stderr
    assert severities(done.stderr) == "WWIWE"


@pytest.fixture
def own_handlers(monkeypatch):
    """brewnet's own handlers put back as they were (stderr only, no files) afterwards."""
    monkeypatch.setattr(blog, "_also_to_stderr", False)
    level = blog.get_logger().level
    yield blog.get_logger()
    monkeypatch.undo()
    init_log(0, True)
    blog.get_logger().setLevel(level)


def test_init_log_to_files_honours_the_threshold_and_also_log_to_stderr(
        tmp_path, monkeypatch, capsys, own_handlers):
    """init_log(0, False) logs as glog: files in GLOG_log_dir, stderr from
    GLOG_stderrthreshold; also_log_to_stderr (what the brewnet command sets, as Caffe's
    tool sets alsologtostderr) shows every line on stderr as well."""
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    monkeypatch.setenv("GLOG_log_dir", str(tmp_path))
    monkeypatch.setenv("GLOG_stderrthreshold", "1")
    path = init_log(0, False)
    own_handlers.info("quiet")
    own_handlers.warning("loud")
    assert severities(sys.stderr.getvalue()) == "W"
    blog.also_log_to_stderr()
    own_handlers.info("now shown")
    assert severities(sys.stderr.getvalue()) == "WI"
    assert severities(Path(path).read_text()) == "IWI"


class ZMQInteractiveShell:
    """Stands for ipykernel's shell class, which in_notebook_kernel knows by name."""


def test_notebook_kernel_sends_info_to_fd_2_and_warnings_to_the_cell(
        monkeypatch, capfd, own_handlers):
    """In a Jupyter kernel (ipykernel imported, a ZMQInteractiveShell running), INFO lines go
    to file descriptor 2 (the server's terminal, as glog's do), warnings and errors to
    sys.stderr, which the kernel shows in the cell."""
    shell = ZMQInteractiveShell()
    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    ipython = types.ModuleType("IPython")
    ipython.get_ipython = lambda: shell
    monkeypatch.setitem(sys.modules, "IPython", ipython)
    assert in_notebook_kernel()
    cell = io.StringIO()
    monkeypatch.setattr(sys, "stderr", cell)
    init_log(0, True)
    own_handlers.info("Creating layer conv1")
    own_handlers.warning("a warning for the cell")
    own_handlers.error("an error for the cell")
    assert severities(cell.getvalue()) == "WE"
    terminal = capfd.readouterr().err
    assert severities(terminal) == "I" and "Creating layer conv1" in terminal


def test_notebook_kernel_that_pipes_fd_2_into_the_cell(monkeypatch, capfd, own_handlers):
    """ipykernel >= 6 pipes descriptor 2 into the cell too and keeps the terminal's
    descriptor as ``sys.stderr._original_stdstream_copy``: INFO lines go to that one."""
    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    ipython = types.ModuleType("IPython")
    ipython.get_ipython = ZMQInteractiveShell
    monkeypatch.setitem(sys.modules, "IPython", ipython)
    read_end, write_end = os.pipe()
    cell = io.StringIO()
    cell._original_stdstream_copy = write_end
    monkeypatch.setattr(sys, "stderr", cell)
    try:
        init_log(0, True)
        own_handlers.info("Creating layer conv1")
        own_handlers.warning("a warning for the cell")
        os.close(write_end)
        with os.fdopen(read_end) as terminal:
            assert severities(terminal.read()) == "I"
    finally:
        monkeypatch.undo()
        init_log(0, True)
    assert severities(cell.getvalue()) == "W" and capfd.readouterr().err == ""


def test_ipykernel_without_a_kernel_shell_is_not_a_notebook(monkeypatch):
    """ipykernel imported by a plain script, or IPython's terminal shell, is not a kernel."""
    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    monkeypatch.delitem(sys.modules, "IPython", raising=False)
    assert not in_notebook_kernel()
    ipython = types.ModuleType("IPython")
    ipython.get_ipython = lambda: type("TerminalInteractiveShell", (), {})()
    monkeypatch.setitem(sys.modules, "IPython", ipython)
    assert not in_notebook_kernel()



KERNEL_CELL = """
import brewnet as caffe
caffe.log("INFO-LINE")
caffe.log.get_logger().warning("WARN-LINE")
"""


@pytest.mark.slow
def test_in_a_real_jupyter_kernel(tmp_path):
    """End to end, in an ipykernel kernel (where installed; ipykernel 7 pipes fd 2 into the
    cell): the cell shows the warning and not the INFO line, which the kernel process's
    terminal gets."""
    manager_module = pytest.importorskip("jupyter_client.manager")
    pytest.importorskip("ipykernel")
    terminal = tmp_path / "kernel_stderr.txt"
    environ = {**os.environ, "PYTHONPATH": os.pathsep.join([*sys.path[1:], str(ROOT)])}
    cell: list[str] = []

    def shown(message: dict) -> None:
        if message["msg_type"] == "stream":
            cell.append(message["content"]["text"])

    with terminal.open("w") as out:
        manager = manager_module.KernelManager()
        manager.start_kernel(env=environ, stdout=out, stderr=out)
        client = manager.client()
        try:
            client.start_channels()
            client.wait_for_ready(timeout=60)
            reply = client.execute_interactive(KERNEL_CELL, timeout=60, output_hook=shown)
        finally:
            client.stop_channels()
            manager.shutdown_kernel(now=True)
    assert reply["content"]["status"] == "ok"
    assert "WARN-LINE" in "".join(cell) and "INFO-LINE" not in "".join(cell)
    assert "INFO-LINE" in terminal.read_text()
