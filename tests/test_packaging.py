"""What ships and what git keeps out: the sdist's MANIFEST.in takes the sources, tests (with their support
package), examples, docs and the benchmarks' saved results from a used checkout, never what a build left
there, and every one of its lines matches a file, in a fresh clone as in a used checkout (no build
warnings); .gitignore covers the build outputs.  The version says which build it is (the next release
as a development version, with the commit of a build from a git checkout as a local version); the
classifiers claim only what is tested; the long description has no relative link."""
import inspect
import logging
import os
import re
import runpy
import shutil
import subprocess
import sys

import pytest

import tvmfast
from tvmfast import _version

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE_CHECKOUT = pytest.mark.skipif(not os.path.exists(os.path.join(ROOT, "setup.py")), reason="not a source checkout")


def manifest_files(tree, caplog, added=()) -> tuple[list[str], list[str]]:
    """(files, warnings) of the sdist's MANIFEST.in template applied to ``tree``, as setuptools does;
    ``added``: the files setuptools lists before the template (the extension's sources)."""
    from setuptools.command.egg_info import FileList  # noqa: PLC0415

    cwd = os.getcwd()
    os.chdir(tree)
    try:
        with caplog.at_level(logging.WARNING):
            caplog.clear()
            files = FileList()
            files.findall()
            files.extend(added)
            with open(os.path.join(ROOT, "MANIFEST.in")) as fh:
                for line in fh:
                    if line.strip() and not line.lstrip().startswith("#"):
                        files.process_template_line(line.strip())
        return sorted(files.files), [r.getMessage() for r in caplog.records]
    finally:
        os.chdir(cwd)


@pytest.mark.skipif(not os.path.exists(os.path.join(ROOT, "MANIFEST.in")), reason="not a source checkout")
def test_manifest_ships_sources_only_from_a_used_checkout(tmp_path, caplog):
    sources = ["README.md", "CHANGELOG.md", "LICENSE", "pyproject.toml", "setup.py", "tox.ini", "docs/api.md",
               "tvmfast/_core.pyx", "tvmfast/spine/invoke.pxi", "tvmfast/_core.pxd", "tvmfast/memory/tensor.h",
               "tvmfast/_core.pyi", "tvmfast/py.typed", "tests/conftest.py", "tests/test_x.py",
               "examples/quickstart.py", "examples/c_api/rows.pyx", "bench/harness.py", "bench/RESULTS.md",
               "bench/results/results_cpu.json", "bench/results/chart_cpu.png", ".ci/run",
               "tests/support/isolation.py", "tests/compat/README.md", "tests/compat/test_build.cc",
               "tests/compat/test_build.h"]
    built = ["bench/out/results_cpu.json", "bench/out/results_cpu.md", "bench/out/chart_cpu.png",
             "examples/c_api/build/temp.linux-x86_64-cpython-311/rows.o", "examples/c_api/rows.cpp",
             "examples/c_api/rows.cpython-311-x86_64-linux-gnu.so", "tvmfast/_core.cpp",
             "tvmfast/_core.cpython-311-x86_64-linux-gnu.so", "build/temp.linux-x86_64-cpython-311/tvmfast/_core.o",
             "dist/tvmfast-0.2.0.tar.gz", "tests/__pycache__/conftest.cpython-311.pyc"]
    for name in sources + built:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    files, warnings = manifest_files(tmp_path, caplog, added=["tvmfast/_core.cpp"])
    assert set(sources) <= set(files), set(sources) - set(files)
    assert not set(built) & set(files), set(built) & set(files)
    assert not warnings, warnings


@pytest.mark.skipif(not os.path.isdir(os.path.join(ROOT, ".git")), reason="not a git checkout")
def test_manifest_gives_no_warning_in_a_fresh_clone(tmp_path, caplog):
    """A fresh clone has none of the build outputs: nothing may be excluded that is not there."""
    res = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    for name in res.stdout.split():
        if os.path.isfile(os.path.join(ROOT, name)):
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(os.path.join(ROOT, name), tmp_path / name)
    # setuptools adds the extension's sources itself: Cython's C++ by the time the sdist is made.
    (tmp_path / "tvmfast" / "_core.cpp").write_text("// what cythonize writes")
    files, warnings = manifest_files(tmp_path, caplog, added=["tvmfast/_core.cpp"])
    assert not warnings, warnings
    assert "tvmfast/_core.cpp" not in files and "tests/support/isolation.py" in files


@pytest.mark.skipif(not os.path.exists(os.path.join(ROOT, "MANIFEST.in")), reason="not a source checkout")
def test_manifest_patterns_all_match_something(caplog):
    """Every include line of MANIFEST.in matches a file of the checkout (no build warnings)."""
    _, warnings = manifest_files(ROOT, caplog)
    assert not [w for w in warnings if "no files found matching" in w], warnings


@pytest.mark.skipif(not os.path.isdir(os.path.join(ROOT, ".git")), reason="not a git checkout")
def test_gitignore_covers_build_outputs():
    paths = ["dist/tvmfast-0.2.0.tar.gz", "build/lib/x.so", "tvmfast/_core.cpp", "tvmfast/_core.cpython-311.so",
             "bench/out/results_cpu.json", "examples/c_api/build/rows.o", "examples/c_api/rows.cpp"]
    res = subprocess.run(["git", "check-ignore", "--no-index", *paths], cwd=ROOT, capture_output=True, text=True)
    assert sorted(res.stdout.split()) == sorted(paths), res.stdout + res.stderr


def test_version_is_the_next_release_in_development():
    """Newer than the last release (0.2.0), older than the next (0.3.0): a bug report tells HEAD
    from 0.2.0.  A build from a git checkout adds its commit (+g<hash>), nothing else does."""
    from packaging.version import Version  # noqa: PLC0415

    version = Version(tvmfast.__version__)
    assert Version("0.2.0") < version < Version("0.3.0") and version.is_devrelease, version
    assert version.local is None or re.fullmatch(r"g[0-9a-f]{7,40}(\.dirty)?", version.local), version
    assert tvmfast.__version__.split("+")[0] == _version.__version__.split("+")[0]
    names = [name for name in dir(tvmfast) if not name.startswith("_")]
    assert "Any" not in names and "annotations" not in names
    # What is left is the API and tvmfast's own modules (torch_op and others, once imported).
    assert [name for name in names if not inspect.ismodule(getattr(tvmfast, name))] == [
        "BoundFunction", "FrozenFunction", "bind"]
    assert sorted(tvmfast.__all__) == sorted(["BoundFunction", "FrozenFunction", "alloc", "bind", "__version__"])


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_git_local_version(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    assert _version.git_local_version(str(repo)) == ""  # no git
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false"]
    subprocess.run([*git, "init", "-q"], cwd=repo, check=True)
    (repo / "a.txt").write_text("a")
    subprocess.run([*git, "add", "a.txt"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "a"], cwd=repo, check=True)
    head = subprocess.run(["git", "rev-parse", "--short=10", "HEAD"], cwd=repo, capture_output=True, text=True,
                          check=True).stdout.strip()
    assert _version.git_local_version(str(repo)) == f"+g{head}"
    (repo / "b.txt").write_text("untracked files do not count")
    assert _version.git_local_version(str(repo)) == f"+g{head}"
    (repo / "a.txt").write_text("changed")
    assert _version.git_local_version(str(repo)) == f"+g{head}.dirty"
    (repo / "sub").mkdir()
    assert _version.git_local_version(str(repo / "sub")) == ""  # an sdist unpacked inside some repository


@pytest.fixture(scope="module")
def setup_py():
    """setup.py's namespace, without running setup()."""
    pytest.importorskip("Cython")
    return runpy.run_path(os.path.join(ROOT, "setup.py"), run_name="tvmfast_setup_under_test")


@SOURCE_CHECKOUT
def test_builds_name_their_commit(setup_py, tmp_path):
    """setup.py's version: the checkout's, with its commit where it is a git checkout; written into the
    packaged copy of _version.py (not a hard link to the checkout's) only."""
    base = setup_py["BASE_VERSION"]
    assert setup_py["VERSION"] == base + _version.git_local_version(ROOT)
    original = os.path.join(ROOT, "tvmfast", "_version.py")
    packaged = tmp_path / "_version.py"
    os.link(original, packaged)
    with open(original) as fh:
        before = fh.read()
    setup_py["_write_version"](str(packaged))
    with open(original) as fh:
        assert fh.read() == before
    namespace = runpy.run_path(str(packaged))
    assert namespace["__version__"] == setup_py["VERSION"]


@SOURCE_CHECKOUT
def test_long_description_has_no_relative_link(setup_py):
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as fh:
        readme = fh.read()
    absolute = setup_py["long_description"](readme, "https://github.com/example/tvmfast")
    plain = setup_py["long_description"](readme)
    code_spans = re.findall(r"`[^`\n]*`", readme)
    for text in (absolute, plain):
        outside_code = re.sub(r"`[^`\n]*`", "", re.sub(r"^```.*?^```", "", text, flags=re.M | re.S))
        targets = re.findall(r"\]\(([^)\s]+)\)", outside_code)
        assert all(re.match(r"https?://|mailto:|#", t) for t in targets), targets
        assert all(span in text for span in code_spans)  # code is left as it is
        assert text.startswith("# tvmfast\n") and "## Set up and test a checkout" not in text.split("## ")[1]
    assert "](https://github.com/example/tvmfast/blob/HEAD/docs/install.md)" in absolute
    sample = "See [docs/api.md](docs/api.md#bind), [the guide](docs/gpu.md), `a[0](b)`, ![chart](c.png)."
    assert setup_py["long_description"](sample, "https://x.org/r") == (
        "See [docs/api.md](https://x.org/r/blob/HEAD/docs/api.md#bind), [the guide](https://x.org/r/blob/HEAD/"
        "docs/gpu.md), `a[0](b)`, ![chart](https://x.org/r/raw/HEAD/c.png).")
    assert setup_py["long_description"](sample) == "See docs/api.md, the guide (docs/gpu.md), `a[0](b)`, chart."


@SOURCE_CHECKOUT
def test_classifiers_claim_only_what_is_tested():
    """docs/install.md: tested on Linux x86_64 with CPython 3.10-3.13; 3.14 and macOS are configured only."""
    tomllib = pytest.importorskip("tomllib" if sys.version_info >= (3, 11) else "tomli")
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as fh:
        classifiers = tomllib.load(fh)["project"]["classifiers"]
    pythons = sorted(c.rsplit(" :: ", 1)[1] for c in classifiers if re.fullmatch(r"Programming Language :: "
                                                                                  r"Python :: 3\.\d+", c))
    assert pythons == ["3.10", "3.11", "3.12", "3.13"]
    assert [c for c in classifiers if c.startswith("Operating System")] == ["Operating System :: POSIX :: Linux"]
