"""The README and docs/*.md as a reader meets them: every ```python block runs as written, a page's
blocks top to bottom as one script (in a child process, from an empty folder, with only the
installed packages), and the README keeps the shape CI and a newcomer rely on.

A block whose first line is ``# needs CUDA`` is left out where CUDA is not available, or where a
module it imports is not installed (a GPU library such as quack-kernels); a page whose blocks import
torch, apache-tvm or numpy is skipped where that is not installed.  Blocks that are
not Python use another fence (```sh, ```text, ```cython); a bare ``` fence is refused.
"""
from __future__ import annotations

import ast
import importlib.util
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
DOCS = os.path.join(ROOT, "docs")
PAGES = ([README] if os.path.exists(README) else []) + (
    sorted(os.path.join(DOCS, n) for n in os.listdir(DOCS) if n.endswith(".md")) if os.path.isdir(DOCS) else [])
FENCES = {"python", "sh", "text", "cython"}
NEEDS_CUDA = "# needs CUDA"
OPTIONAL = {"torch": "torch", "tvm": "apache-tvm", "numpy": "numpy"}

pytestmark = pytest.mark.skipif(not PAGES, reason="README.md and docs/ are not here (an installed-package run)")


def page_id(path: str) -> str:
    return os.path.relpath(path, ROOT)


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """(language, code) of every fenced block, in order; the language is "" for a bare fence."""
    blocks, lang, lines = [], None, []
    for line in text.splitlines():
        if lang is None:
            m = re.fullmatch(r"```(\w*)\s*", line)
            if m:
                lang, lines = m.group(1), []
        elif line.strip() == "```":
            blocks.append((lang, "\n".join(lines) + "\n"))
            lang = None
        else:
            lines.append(line)
    assert lang is None, "a fenced block is not closed"
    return blocks


def cuda_available() -> bool:
    if importlib.util.find_spec("torch") is None:
        return False
    import torch  # noqa: PLC0415

    return torch.cuda.is_available()


def imported_modules(code: str) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def runnable_blocks(blocks: list[str], cuda: bool) -> list[str]:
    """The blocks to run: every block, but a ``# needs CUDA`` one only with CUDA and every module it
    imports installed."""
    def installed(code):
        return all(importlib.util.find_spec(name) is not None for name in imported_modules(code))

    return [code for code in blocks if not code.startswith(NEEDS_CUDA) or (cuda and installed(code))]


def test_runnable_blocks_leave_out_what_cannot_run_here():
    plain, cuda_block = "x = 1\n", f"{NEEDS_CUDA}\nimport os\n"
    missing = f"{NEEDS_CUDA}\nimport tvmfast_no_such_gpu_library\n"
    assert runnable_blocks([plain, cuda_block, missing], cuda=False) == [plain]
    assert runnable_blocks([plain, cuda_block, missing], cuda=True) == [plain, cuda_block]


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_python_blocks_run_as_written(page, tmp_path):
    with open(page) as fh:
        blocks = [code for lang, code in fenced_blocks(fh.read()) if lang == "python"]
    if not blocks:
        pytest.skip("no Python blocks")
    runnable = runnable_blocks(blocks, cuda_available())
    if not runnable:
        pytest.skip("every block needs CUDA")
    script = "\n\n".join(runnable)
    for module, package in OPTIONAL.items():
        if module in imported_modules(script):
            pytest.importorskip(module, reason=f"the page's blocks need {package}")
    path = tmp_path / (os.path.basename(page)[:-3] + "_blocks.py")
    path.write_text(script)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # nothing but what a user has
    res = subprocess.run([sys.executable, str(path)], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, f"{page_id(page)}: its Python blocks fail:\n{res.stderr[-4000:]}"


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_fences_and_links(page):
    """Every block says its language (only Python ones are run), every block that needs CUDA says
    so first, and every relative link leads to a file of the tree."""
    with open(page) as fh:
        text = fh.read()
    for lang, code in fenced_blocks(text):
        assert lang in FENCES, f"a ```{lang} block: use one of {sorted(FENCES)}"
        if lang == "python" and re.search(r'device="cuda"|\.cuda\(|torch\.cuda\.', code):
            assert code.startswith(NEEDS_CUDA), f"a block that uses CUDA does not start with {NEEDS_CUDA!r}"
    prose = re.sub(r"`[^`\n]*`", "", re.sub(r"(?ms)^```\w*\n.*?^```\s*$", "", text))  # code is no link
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", prose):
        if re.match(r"\w+://", target):
            continue
        path = os.path.normpath(os.path.join(os.path.dirname(page), target))
        assert os.path.exists(path), f"{page_id(page)} links to {target}, which is not there"


@pytest.mark.skipif(not os.path.exists(README), reason="no README.md here")
def test_readme_shape():
    """Short; what tvmfast is before any code; the set-up commands CI runs (.ci/run: the first ```sh
    block, exactly two commands); no talk of anything but the project."""
    with open(README) as fh:
        text = fh.read()
    lines = text.splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines"
    assert lines[0] == "# tvmfast"
    first_fence = next(i for i, line in enumerate(lines) if line.startswith("```"))
    assert "is" in " ".join(lines[1:first_fence]) and first_fence > 3, "a paragraph on what tvmfast is comes first"
    sh = next(code for lang, code in fenced_blocks(text) if lang == "sh")
    assert len(sh.strip().splitlines()) == 2
    assert "virtual environment" in text and "download.pytorch.org/whl/cpu" in text[:text.index("```sh")]


# ---------------------------------------------------------------------------------------------
# Timings are generated, never hand-written: every figure of time in the README, docs/ and the
# benchmark prose (bench/RESULTS_NOTES.md, whose {{name}} placeholders bench.report fills) sits in
# a block that `python -m bench.report` writes from bench/results/*.json.
# ---------------------------------------------------------------------------------------------
NOTES = os.path.join(ROOT, "bench", "RESULTS_NOTES.md")
PROSE = PAGES + ([NOTES] if os.path.exists(NOTES) else [])
GENERATED = re.compile(r"<!-- ([\w-]+): written by `python -m bench\.report` -->(.*?)<!-- /\1 -->", re.S)
# a number followed by a unit of time: "0.87 us", "4.11 µs", "30-35 ns", "1.5ms"
TIMING = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?:\s*[-–]\s*\d+(?:\.\d+)?)?\s*(?:us|µs|μs|ns|ms)\b")
# a table's header row naming a unit of time: "| path | us/call |", "| tvm_ffi (us) |"
TIMED_TABLE = re.compile(r"^\|[^\n]*(?<![\w:])(?:us|µs|μs|ns)(?![\w:])[^\n]*\|[ \t]*\n\|[ \t]*:?-{3}", re.M)


def hand_written(text: str) -> str:
    """``text`` without its generated blocks and fenced code (what a person wrote and maintains)."""
    text = GENERATED.sub("", text)
    return re.sub(r"(?ms)^```\w*\n.*?^```\s*$", "", text)


def test_timing_detector_finds_what_it_must():
    """The check below would pass on an empty pattern: here it must find each way a figure of time
    is written, and nothing that is not one."""
    found = ["costs 0.87 us", "4.11 µs of host time", "30-35 ns a call", "1.5ms", "(6.39 against 1.91 us)"]
    for text in found:
        assert TIMING.search(text), text
    for text in ["16-byte aligned", "apache-tvm 0.27.0.post1", "2 cores", "`--number 2000`", "1.12x", "status"]:
        assert not TIMING.search(text), text
    assert TIMED_TABLE.search("| path | us/call | vs tvm_ffi |\n|---|---:|---:|")
    for text in ["| Python | how |\n|---|---|", "| `as_torch_op(\"ns::name\")` | an op |\n|---|---|",
                 "| a | b |\n| 1 us | 2 |"]:  # not a header naming a unit (the last is a row: TIMING's)
        assert not TIMED_TABLE.search(text), text
    assert hand_written("a <!-- x: written by `python -m bench.report` -->0.5 us<!-- /x --> b") == "a  b"


@pytest.mark.skipif(not os.path.exists(README), reason="no README.md here")
def test_generated_blocks_hold_the_timings():
    """The README's figures of time are in generated blocks (so the check below is not vacuous: the
    README has timings, and the pattern sees them where they are)."""
    with open(README) as fh:
        blocks = dict(GENERATED.findall(fh.read()))
    for name in ("headline", "speed-table"):
        assert name in blocks, f"README.md has no generated {name!r} block"
        assert TIMING.search(blocks[name]) or TIMED_TABLE.search(blocks[name]), name


@pytest.mark.parametrize("page", PROSE, ids=page_id)
def test_no_hand_written_timings(page):
    """A figure of time outside a generated block would be a second source for a measured fact (or a
    stale one): quote it through bench/report.py (a block, or a {{name}} in RESULTS_NOTES.md)."""
    with open(page) as fh:
        text = hand_written(fh.read())
    figures = [m.group(0) for m in TIMING.finditer(text)] + TIMED_TABLE.findall(text)
    assert not figures, f"{page_id(page)}: hand-written timings {figures}; generate them with bench/report.py"
