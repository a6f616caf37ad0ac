"""The two compiled modules: the partial stage's fast path (collectors/_scan.c) and the exact
moments of a numeric batch (monitor/stats/_exact.c).

Everything else is in pyproject.toml. Both are optional: without a C compiler the build goes on,
the collector reads every record the general way (orjson) and the moments are summed with numpy,
with the same results.
"""

from setuptools import Extension, setup

FLAGS = ["-O2", "-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers"]

setup(ext_modules=[Extension("collectors._scan", ["collectors/_scan.c"], optional=True, extra_compile_args=FLAGS),
                   Extension("monitor.stats._exact", ["monitor/stats/_exact.c"], optional=True,
                             extra_compile_args=FLAGS)])
