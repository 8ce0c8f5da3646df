"""Build the Cython core against the headers and libtvm_ffi of the installed apache-tvm-ffi."""
import os

from Cython.Build import cythonize
from setuptools import Extension, setup
import tvm_ffi.libinfo as ffi_libinfo

ffi_lib = ffi_libinfo.find_libtvm_ffi()
ffi_lib_dir = os.path.dirname(ffi_lib)
include_dirs = list(ffi_libinfo.include_paths())
dlpack_dir = os.path.join(os.path.dirname(ffi_libinfo.__file__), "3rdparty", "dlpack", "include")
if os.path.isdir(dlpack_dir):
    include_dirs.append(dlpack_dir)


def extension(name):
    return Extension(
        f"tvmfast.{name}",
        [f"tvmfast/{name}.pyx"],
        include_dirs=include_dirs,
        library_dirs=[ffi_lib_dir],
        libraries=["tvm_ffi"],
        # Load without LD_LIBRARY_PATH: next to an installed tvm_ffi, or where it was at build time.
        runtime_library_dirs=["$ORIGIN/../tvm_ffi/lib", ffi_lib_dir],
        language="c++",
        extra_compile_args=["-O3", "-std=c++17", "-Wno-unused-function"],
    )


setup(
    ext_modules=cythonize(
        [extension("_core")],
        compiler_directives={"language_level": "3"},
        annotate=bool(os.environ.get("TVMFAST_ANNOTATE")),
    ),
)
