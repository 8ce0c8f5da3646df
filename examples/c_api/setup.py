"""python setup.py build_ext --inplace  (from this folder), then python run.py"""
import os

import tvm_ffi.libinfo as ffi_libinfo
from Cython.Build import cythonize
from setuptools import Extension, setup

import tvmfast

include_dirs = list(ffi_libinfo.include_paths()) + [
    os.path.join(os.path.dirname(ffi_libinfo.__file__), "3rdparty", "dlpack", "include")]
tvmfast_root = os.path.dirname(os.path.dirname(os.path.abspath(tvmfast.__file__)))  # finds tvmfast/*.pxd
setup(ext_modules=cythonize([Extension("rows", ["rows.pyx"], include_dirs=include_dirs, language="c++")],
                            include_path=[tvmfast_root]))
