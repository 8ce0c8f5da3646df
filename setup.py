"""Build the Cython core against the headers and libtvm_ffi of the installed apache-tvm-ffi.

Environment variables:

* ``TVMFAST_SANITIZE=1`` builds with AddressSanitizer and UndefinedBehaviorSanitizer (see
  docs/development.md: the tests then run with libasan preloaded).
* ``TVMFAST_DEBUG=1`` (or ``build_ext --debug``) keeps the compiler's debug information; other
  builds have none (``-g0``: the extension is some 4 MB smaller; its symbol table stays, so C++
  backtraces still name tvmfast's functions).
* ``TVMFAST_ANNOTATE=1`` writes Cython's annotated HTML next to the sources.
* ``CPPFLAGS=-DTVMFAST_TRACE`` builds the stage timing of ``python -m bench.stages``.

The version (tvmfast/_version.py) gets the git commit of a build from a checkout as a local
version, ``0.3.0.dev0+g<short hash>``: written into the packaged copy of _version.py (wheel and
sdist), never into the checkout's own.  The long description is README.md with its relative links
made absolute (against the repository URL of pyproject.toml's [project.urls], where there is one)
and its section on setting up a checkout moved to the end.
"""

import glob
import hashlib
import os
import re
import sys

import tvm_ffi.libinfo as ffi_libinfo
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

ROOT = os.path.dirname(os.path.abspath(__file__))


def _flag(name):
    return os.environ.get(name, "0") not in ("", "0")


# --- The version --------------------------------------------------------------------------------
def _load_version_module():
    """tvmfast/_version.py, run on its own (importing tvmfast would need the extension)."""
    namespace = {}
    path = os.path.join(ROOT, "tvmfast", "_version.py")
    with open(path) as fh:
        exec(compile(fh.read(), path, "exec"), namespace)
    return namespace


_version_module = _load_version_module()
BASE_VERSION = _version_module["__version__"]
# An sdist's _version.py already names its commit; a checkout's gets it from git.
VERSION = BASE_VERSION if "+" in BASE_VERSION else BASE_VERSION + _version_module["git_local_version"](ROOT)
_VERSION_LINE = re.compile(r'^__version__ = "[^"]*"$', re.M)


def _write_version(path):
    """Put VERSION into the copy of _version.py at path (a build or sdist tree)."""
    if not os.path.exists(path):
        return
    with open(path) as fh:
        text = fh.read()
    new_text, count = _VERSION_LINE.subn(f'__version__ = "{VERSION}"', text)
    if count != 1:
        raise RuntimeError(f"{path}: expected one __version__ line")
    if os.path.islink(path) or os.stat(path).st_nlink > 1:  # a hard link to the checkout's file
        os.unlink(path)
    with open(path, "w") as fh:
        fh.write(new_text)


class BuildPy(build_py):
    """The built package's _version.py says which commit it was built from."""

    def run(self):
        super().run()
        if not getattr(self, "editable_mode", False):
            _write_version(os.path.join(self.build_lib, "tvmfast", "_version.py"))


class Sdist(sdist):
    """The sdist's _version.py says which commit it was made from (there is no git after it)."""

    def make_release_tree(self, base_dir, files):
        super().make_release_tree(base_dir, files)
        _write_version(os.path.join(base_dir, "tvmfast", "_version.py"))


# --- The long description -----------------------------------------------------------------------
def _repository_url():
    """The repository URL of pyproject.toml's [project.urls] (Source, Repository or Homepage), or None."""
    try:
        with open(os.path.join(ROOT, "pyproject.toml")) as fh:
            text = fh.read()
    except OSError:  # a copy of the sources alone (tests/test_bench_smoke.py builds one)
        return None
    match = re.search(r"^\[project\.urls\]\s*$(.*?)(?=^\[|\Z)", text, re.M | re.S)
    if match is None:
        return None
    urls = dict(re.findall(r'^\s*"?([A-Za-z][\w -]*?)"?\s*=\s*"([^"]+)"', match.group(1), re.M))
    for key in ("Source", "Repository", "Homepage"):
        if urls.get(key, "").startswith("https://"):
            return urls[key].rstrip("/")
    return None


def long_description(readme, repository=None):
    """README.md for an index page: relative links absolute against ``repository`` (a GitHub-style
    URL: ``/blob/HEAD/`` for files, ``/raw/HEAD/`` for images), or without one, their text only
    (no link that breaks); code left as it is; the "Set up and test a checkout" section moved to
    the end (an index page opens with what tvmfast is and how it is used)."""

    def replace(match):
        if match.group("link") is None:  # inline code, a fenced block
            return match.group(0)
        bang, text, target = match.group("bang"), match.group("text"), match.group("target")
        if re.match(r"[a-z][a-z0-9+.-]*:|#|/", target):  # absolute, mailto:, an anchor of this page
            return match.group(0)
        if repository is None:
            path = target.split("#")[0]
            return text if bang or text.strip("`") in (target, path) else f"{text} ({path})"
        kind = "raw" if bang else "tree" if target.split("#")[0].endswith("/") else "blob"
        return f"{bang}[{text}]({repository}/{kind}/HEAD/{target})"

    text = re.sub(r"(?P<fence>^```.*?^```)|(?P<code>`[^`\n]*`)"
                  r"|(?P<link>(?P<bang>!?)\[(?P<text>(?:[^\]`\n]|`[^`\n]*`)*)\]\((?P<target>[^)\s]+)\))",
                  replace, readme, flags=re.M | re.S)
    setup_section = re.search(r"^## Set up and test a checkout\n.*?(?=^## |\Z)", text, re.M | re.S)
    if setup_section is not None:
        text = (text[:setup_section.start()] + text[setup_section.end():].rstrip("\n") + "\n\n"
                + setup_section.group(0).rstrip("\n") + "\n")
    return text


ffi_lib_dir = os.path.dirname(ffi_libinfo.find_libtvm_ffi())
include_dirs = list(ffi_libinfo.include_paths())
dlpack_dir = os.path.join(os.path.dirname(ffi_libinfo.__file__), "3rdparty", "dlpack", "include")
if os.path.isdir(dlpack_dir):
    include_dirs.append(dlpack_dir)

# Installed side by side in site-packages, tvmfast/_core.so finds tvm_ffi/lib/libtvm_ffi.so
# through this relative path; nothing in a wheel names the (temporary) directory it was built
# in. An in-place build needs no path: tvmfast/__init__.py imports tvm_ffi, which loads
# libtvm_ffi, before the extension.
RPATH = "@loader_path/../tvm_ffi/lib" if sys.platform == "darwin" else "$ORIGIN/../tvm_ffi/lib"

compile_args = ["-O3", "-std=c++17", "-Wno-unused-function"]
link_args = []
sanitize_build = _flag("TVMFAST_SANITIZE")
debug_build = sanitize_build or _flag("TVMFAST_DEBUG")
if sys.platform == "darwin":
    link_args.append(f"-Wl,-rpath,{RPATH}")  # distutils' runtime_library_dirs means -L on macOS
    runtime_library_dirs = []
else:
    runtime_library_dirs = [RPATH]
if sanitize_build:
    sanitize = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer"]
    compile_args += ["-O1", "-g", *sanitize]
    link_args += sanitize
if not debug_build:
    compile_args.append("-g0")  # after Python's own CFLAGS (-g), which it overrides


class BuildExt(build_ext):
    """Rebuild when the compiler flags changed (a sanitizer build and a normal one), not only when
    a source is newer: setuptools' up-to-date check looks at timestamps alone, so a normal build
    after a TVMFAST_SANITIZE=1 build would otherwise keep the instrumented extension."""

    def build_extension(self, ext):
        if self.debug and "-g0" in ext.extra_compile_args:  # build_ext --debug keeps debug information
            ext.extra_compile_args = [arg for arg in ext.extra_compile_args if arg != "-g0"]
        flags = " ".join([*ext.extra_compile_args, *ext.extra_link_args, *ext.runtime_library_dirs])
        target = os.path.abspath(self.get_ext_fullpath(ext.name))
        stamp = os.path.join(self.build_temp, "flags-" + hashlib.sha1(target.encode()).hexdigest()[:16])
        try:
            with open(stamp) as f:
                same = f.read() == flags
        except OSError:
            same = False
        force, self.force = self.force, self.force or not same
        try:
            super().build_extension(ext)
        finally:
            self.force = force
        os.makedirs(self.build_temp, exist_ok=True)
        with open(stamp, "w") as f:
            f.write(flags)


core = Extension(
    "tvmfast._core",
    ["tvmfast/_core.pyx"],
    # Every file the core includes or cimports: editing any of them rebuilds the extension
    # (Cython tracks .pxi/.pxd itself; setuptools needs this list for headers and the C++ step).
    depends=sorted(path for pattern in ("*.pxi", "*.pxd", "*.h")
                   for path in glob.glob(f"tvmfast/**/{pattern}", recursive=True)),
    include_dirs=include_dirs,
    library_dirs=[ffi_lib_dir],
    libraries=["tvm_ffi"],
    runtime_library_dirs=runtime_library_dirs,
    language="c++",
    extra_compile_args=compile_args,
    extra_link_args=link_args,
)

def main():
    description = {}
    if os.path.exists(os.path.join(ROOT, "README.md")):  # not in a copy of the sources alone
        with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as fh:
            description = {"long_description": long_description(fh.read(), _repository_url()),
                           "long_description_content_type": "text/markdown"}
    setup(
        version=VERSION,
        **description,
        ext_modules=cythonize(
            [core],
            compiler_directives={"language_level": "3"},
            annotate=_flag("TVMFAST_ANNOTATE"),
        ),
        cmdclass={"build_ext": BuildExt, "build_py": BuildPy, "sdist": Sdist},
    )


# (setuptools' PEP 517 backend runs this file as __main__ too; tests/test_packaging.py imports it.)
if __name__ == "__main__":
    main()
