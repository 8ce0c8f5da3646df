"""Build the Cython core against the headers and libtvm_ffi of the installed apache-tvm-ffi.

Environment variables:

* ``TVMFAST_SANITIZE=1`` builds with AddressSanitizer and UndefinedBehaviorSanitizer (see the
  README: the tests then run with libasan preloaded).
* ``TVMFAST_ANNOTATE=1`` writes Cython's annotated HTML next to the sources.
"""

import glob
import os
import sys

import tvm_ffi.libinfo as ffi_libinfo
from Cython.Build import cythonize
from setuptools import Extension, setup

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

core = Extension(
    "tvmfast._core",
    ["tvmfast/_core.pyx"],
    # Every file the core includes or cimports: editing any of them rebuilds the extension
    # (Cython tracks .pxi/.pxd itself; setuptools needs this list for headers and the C++ step).
    depends=sorted(glob.glob("tvmfast/*.pxi") + glob.glob("tvmfast/*.pxd") + glob.glob("tvmfast/*.h")),
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
)
