"""Import :mod:`mmlong.apps.lmms_bridge` against stand-ins for lmms-eval's two base classes (lmms-eval lives in
its own venv, not in the test environment), and forget the module again when the test ends."""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any


def import_bridge(monkeypatch: Any, request: Any, instance: type = object) -> Any:
    """The bridge module, its ``Instance`` base ``instance`` and its ``lmms`` base a plain class; ``monkeypatch``
    restores :data:`sys.modules`, ``request`` drops the imported bridge after the test."""

    class LMMS:
        def __init__(self) -> None:
            pass

    modules = {name: types.ModuleType(name) for name in
               ("lmms_eval", "lmms_eval.api", "lmms_eval.api.instance", "lmms_eval.api.model")}
    modules["lmms_eval.api.instance"].Instance = instance
    modules["lmms_eval.api.model"].lmms = LMMS
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    import mmlong.apps

    def forget() -> None:  # the module imported against the stand-ins leaves with them
        sys.modules.pop("mmlong.apps.lmms_bridge", None)
        if hasattr(mmlong.apps, "lmms_bridge"):
            delattr(mmlong.apps, "lmms_bridge")

    forget()
    request.addfinalizer(forget)
    return importlib.import_module("mmlong.apps.lmms_bridge")
