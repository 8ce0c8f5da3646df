"""python setup.py build_ext --inplace  (from this folder), then python run.py"""
import os

import tvm_ffi.libinfo as ffi_libinfo
from Cython.Build import cythonize
from setuptools import Extension, setup

import tvmfast

include_dirs = list(ffi_libinfo.include_paths()) + [
    os.path.join(os.path.dirname(ffi_libinfo.__file__), "3rdparty", "dlpack", "include")]
tvmfast_root = os.path.dirname(os.path.dirname(os.path.abspath(tvmfast.__file__)))  # finds tvmfast/*.pxd
# Cimporting tvmfast._core includes tvmfast's own headers, whose static helpers for the core's call
# entries and stage timing this module does not use: not a warning of this example's.
quiet = ["-Wno-unused-function", "-Wno-unused-variable"]
setup(ext_modules=cythonize([Extension("rows", ["rows.pyx"], include_dirs=include_dirs, language="c++",
                                       extra_compile_args=quiet)],
                            include_path=[tvmfast_root]))
