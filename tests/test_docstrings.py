"""Every docstring example of the package runs and prints what it shows (doctest), so that the
examples users copy stay true: nine of them had drifted (an exported name, a zoo listing, an
example calling Captum with a Baseline it refuses)."""

from __future__ import annotations

import doctest
import importlib
import io
import pkgutil

import pytest

import captum_cf

MODULES = sorted(
    m.name for m in pkgutil.walk_packages(captum_cf.__path__, "captum_cf.")
    if not m.name.endswith("__main__")
)


def test_the_walk_finds_the_package() -> None:
    assert {"captum_cf.attr.integrated_gradients", "captum_cf.audit.stats",
            "captum_cf.zoo"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    module = importlib.import_module(name)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    out = io.StringIO()
    for test in doctest.DocTestFinder().find(module, name):
        if test.examples and test.name.startswith(name):  # its own, not an imported object's
            runner.run(test, out=out.write)
    assert runner.failures == 0, out.getvalue()[-4000:]
