"""Build the Cython extensions of mmdiff.impl from impl/*.pyx with the system C compiler."""
import os

from Cython.Build import cythonize
from setuptools import Extension, setup

# MMDIFF_DEBUG=1 compiles the impl's self-checks in (see impl/config.pxi).
_debug = os.environ.get("MMDIFF_DEBUG", "0") == "1"

extensions = [
    Extension(
        "mmdiff.impl.machine",
        ["impl/machine.pyx"],
        extra_compile_args=["-O2", "-Wno-unused-function"],
    ),
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives={
            "language_level": "3",
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
        },
        compile_time_env={"MMDIFF_DEBUG": _debug},
        include_path=["impl"],
    ),
)
