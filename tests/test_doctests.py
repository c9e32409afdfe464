"""Docstring examples are part of the documentation: they must run."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["mmlong.types", "mmlong.spec", "mmlong.registry", "mmlong.config",
           "mmlong.sampling", "mmlong.video.base", "mmlong.video.write", "mmlong.contact_sheet"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
