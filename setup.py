"""Build the Cython extensions of mmdiff.impl from impl/*.pyx with the system C compiler."""
import glob
import os

from Cython.Build import cythonize
from setuptools import Extension, setup

# MMDIFF_DEBUG=1 is passed to Cython as a compile-time name; the impl has no
# debug-only code yet (its invariants are checked at run time by check_invariants()).
_debug = os.environ.get("MMDIFF_DEBUG", "0") == "1"

extensions = [
    Extension(
        "mmdiff.impl.machine",
        ["impl/machine.pyx"],
        # machine.pyx includes one .pyx/.pxd per concept (uvloop layout): rebuild on any.
        depends=sorted(glob.glob("impl/*.pyx") + glob.glob("impl/*.pxd") + glob.glob("impl/*.pxi")),
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
