"""``python -m tvmfast``: its help (not the bug report it prints without arguments), an unknown
option refused as argparse refuses one, ``--version``, the version in the report, and a reader
that closes the pipe early (``python -m tvmfast | head -1``) ending it quietly."""
import os
import subprocess
import sys

import tvmfast


def test_python_m_tvmfast_help():
    res = subprocess.run([sys.executable, "-m", "tvmfast", "--help"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("usage: python -m tvmfast")
    assert "bug report" in res.stdout
    assert "tvmfast " not in res.stdout.splitlines()[-1]  # the help, not the report
    res = subprocess.run([sys.executable, "-m", "tvmfast", "--no-such-option"], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 2 and "unrecognized arguments" in res.stderr


def test_python_m_tvmfast_version():
    res = subprocess.run([sys.executable, "-m", "tvmfast", "--version"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    line, = res.stdout.splitlines()
    assert line.startswith(f"tvmfast {tvmfast.__version__}"), line
    # A checkout says its commit as a wheel built from it would (0.3.0.dev0+g<hash>[.dirty]).
    local = tvmfast._version.git_local_version(os.path.dirname(os.path.dirname(os.path.abspath(tvmfast.__file__))))
    assert line == f"tvmfast {tvmfast.__version__}{local}" or "+" in tvmfast.__version__, line


def test_the_report_gives_the_version_and_survives_a_closed_pipe():
    res = subprocess.run([sys.executable, "-m", "tvmfast"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    first = res.stdout.splitlines()[0]
    assert first.startswith("tvmfast") and tvmfast.__version__ in first, first
    kinds = next(line for line in res.stdout.splitlines() if line.startswith("other kinds"))
    assert "ints beyond int64" in kinds and "objects tvm_ffi builds" in kinds, kinds
    # `python -m tvmfast | head -0`: the reader is gone before the report is written.
    proc = subprocess.Popen([sys.executable, "-m", "tvmfast"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 1, err
    assert b"BrokenPipe" not in err and b"Traceback" not in err and b"Exception ignored" not in err, err
