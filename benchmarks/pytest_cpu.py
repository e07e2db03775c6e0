"""CPU seconds per test, for deciding which tests to mark ``slow`` on a busy machine.

Wall time on a shared machine says more about the neighbours than about the test; CPU time (the
pytest process and the children it waited for, from setup to teardown) does not. A pytest plugin:
it writes ``[[test id, CPU s, wall s], ...]`` to ``$PYTEST_CPU_OUT`` (default ``pytest_cpu.json``)
and prints the slowest 15::

    python -m pytest -q -p benchmarks.pytest_cpu -m "not slow" tests
"""

from __future__ import annotations

import json
import os
import resource
import time

import pytest

_rows: list[tuple[str, float, float]] = []


def _cpu_s() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    cpu, wall = _cpu_s(), time.monotonic()
    yield
    _rows.append((item.nodeid, round(_cpu_s() - cpu, 2), round(time.monotonic() - wall, 2)))


def pytest_terminal_summary(terminalreporter):
    with open(os.environ.get("PYTEST_CPU_OUT", "pytest_cpu.json"), "w") as out:
        json.dump(_rows, out)
    terminalreporter.write_line(f"CPU s of {len(_rows)} tests: {sum(r[1] for r in _rows):.0f}; wall s: "
                                f"{sum(r[2] for r in _rows):.0f}; the slowest by CPU:")
    for node, cpu, wall in sorted(_rows, key=lambda r: -r[1])[:15]:
        terminalreporter.write_line(f"  {cpu:7.2f} CPU s  {wall:7.2f} wall s  {node}")
