"""The runnable examples in core's docstrings stay true."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["core.geometry", "core.tracking", "core.counting", "core.camera", "core.windows", "core.trend"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
