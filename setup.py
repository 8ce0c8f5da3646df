"""Build the Cython core against the headers and libtvm_ffi of the installed apache-tvm-ffi.

Environment variables:

* ``TVMFAST_SANITIZE=1`` builds with AddressSanitizer and UndefinedBehaviorSanitizer (see
  docs/development.md: the tests then run with libasan preloaded).
* ``TVMFAST_ANNOTATE=1`` writes Cython's annotated HTML next to the sources.
"""

import glob
import hashlib
import os
import sys

import tvm_ffi.libinfo as ffi_libinfo
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

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
if sys.platform == "darwin":
    link_args.append(f"-Wl,-rpath,{RPATH}")  # distutils' runtime_library_dirs means -L on macOS
    runtime_library_dirs = []
else:
    runtime_library_dirs = [RPATH]
if os.environ.get("TVMFAST_SANITIZE", "0") not in ("", "0"):
    sanitize = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer"]
    compile_args += ["-O1", "-g", *sanitize]
    link_args += sanitize

class BuildExt(build_ext):
    """Rebuild when the compiler flags changed (a sanitizer build and a normal one), not only when
    a source is newer: setuptools' up-to-date check looks at timestamps alone, so a normal build
    after a TVMFAST_SANITIZE=1 build would otherwise keep the instrumented extension."""

    def build_extension(self, ext):
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

setup(
    ext_modules=cythonize(
        [core],
        compiler_directives={"language_level": "3"},
        annotate=os.environ.get("TVMFAST_ANNOTATE", "0") not in ("", "0"),
    ),
    cmdclass={"build_ext": BuildExt},
)
