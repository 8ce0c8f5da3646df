"""``python -m tvmfast``: its help (not the bug report it prints without arguments), and an unknown
option refused as argparse refuses one."""
import subprocess
import sys


def test_python_m_tvmfast_help():
    res = subprocess.run([sys.executable, "-m", "tvmfast", "--help"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("usage: python -m tvmfast")
    assert "bug report" in res.stdout
    assert "tvmfast " not in res.stdout.splitlines()[-1]  # the help, not the report
    res = subprocess.run([sys.executable, "-m", "tvmfast", "--no-such-option"], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 2 and "unrecognized arguments" in res.stderr
