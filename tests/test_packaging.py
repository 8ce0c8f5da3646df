"""What ships and what git keeps out: the sdist's MANIFEST.in takes the sources, tests (with their support
package), examples, docs and the benchmarks' saved results from a used checkout, never what a build left
there, and every one of its include lines matches a file; .gitignore covers the build outputs."""
import logging
import os
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def manifest_files(tree, caplog) -> tuple[list[str], list[str]]:
    """(files, warnings) of the sdist's MANIFEST.in template applied to ``tree``, as setuptools does."""
    from setuptools.command.egg_info import FileList  # noqa: PLC0415

    cwd = os.getcwd()
    os.chdir(tree)
    try:
        with caplog.at_level(logging.WARNING):
            caplog.clear()
            files = FileList()
            files.findall()
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
               "tests/support/isolation.py"]
    built = ["bench/out/results_cpu.json", "bench/out/results_cpu.md", "bench/out/chart_cpu.png",
             "examples/c_api/build/temp.linux-x86_64-cpython-311/rows.o", "examples/c_api/rows.cpp",
             "examples/c_api/rows.cpython-311-x86_64-linux-gnu.so", "tvmfast/_core.cpp",
             "tvmfast/_core.cpython-311-x86_64-linux-gnu.so", "build/temp.linux-x86_64-cpython-311/tvmfast/_core.o",
             "dist/tvmfast-0.2.0.tar.gz", "tests/__pycache__/conftest.cpython-311.pyc"]
    for name in sources + built:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    files, _ = manifest_files(tmp_path, caplog)
    assert set(sources) <= set(files), set(sources) - set(files)
    assert not set(built) & set(files), set(built) & set(files)


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
