"""tvmfast's version (PEP 440), read by setup.py without importing the package.

In a source checkout it is the release this tree leads to, as a development version
(``0.3.0.dev0``: newer than 0.2.0, older than 0.3.0).  A wheel or sdist built from a git checkout
says which commit it was built from, as a local version: setup.py writes
``0.3.0.dev0+g<short hash>`` (``.dirty`` appended when tracked files differed from that commit)
into the copy of this file that it packages; without git the version stays as written here.
"""
import os

__version__ = "0.3.0.dev0"


def git_local_version(root: str) -> str:
    """``+g<short hash>`` (``+g<short hash>.dirty`` when tracked files differ from the commit)
    for the git checkout whose top folder is ``root``; ``""`` for anything else (an unpacked
    sdist, a checkout without git installed)."""
    import subprocess  # noqa: PLC0415  (only setup.py and the bug report ask)

    if not os.path.exists(os.path.join(root, ".git")):  # not a folder inside some other repository
        return ""
    try:
        head = subprocess.run(["git", "rev-parse", "--short=10", "HEAD"], cwd=root, capture_output=True,
                              text=True, timeout=30)
        if head.returncode != 0 or not head.stdout.strip():
            return ""
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                                capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return ""
    dirty = status.returncode == 0 and bool(status.stdout.strip())
    return f"+g{head.stdout.strip()}" + (".dirty" if dirty else "")
