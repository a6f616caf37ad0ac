"""The one compiled module: the partial stage's fast path (collectors/_scan.c).

Everything else is in pyproject.toml. The extension is optional: without a C compiler the build
goes on and the collector reads every record the general way (orjson), with the same results.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("collectors._scan", ["collectors/_scan.c"], optional=True,
                             extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter",
                                                 "-Wno-missing-field-initializers"])])
