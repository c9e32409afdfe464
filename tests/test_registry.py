from __future__ import annotations

from dataclasses import dataclass

import pytest

from mmlong.registry import (
    COMPRESSORS,
    DuplicatePluginError,
    PluginConfigError,
    Registry,
    UnknownPluginError,
)


class Thing:
    @dataclass
    class Config:
        ratio: float = 0.5
        layers: tuple[int, ...] = (1, 2)
        name: str | None = None
        flag: bool = False

    def __init__(self, config):
        self.config = config


def make():
    return Registry("thing", {"thing": "tests.test_registry:Thing"}, entry_point_group=None)


def test_lazy_builtin_and_create_with_spec():
    reg = make()
    obj = reg.from_spec("thing:0.25,layers=3/4,flag=yes")
    assert obj.config == Thing.Config(ratio=0.25, layers=(3, 4), name=None, flag=True)


def test_none_never_overrides_default():
    assert make().create("thing", ratio=None).config.ratio == 0.5


def test_unknown_names_suggest_fix():
    with pytest.raises(UnknownPluginError, match=r"did you mean 'thing'\? available: thing"):
        make().resolve("thnig")
    with pytest.raises(PluginConfigError, match="did you mean 'ratio'"):
        make().create("thing", ratoi=1)
    with pytest.raises(PluginConfigError, match="expected float"):
        make().from_spec("thing:abc")


def test_duplicate_names_raise_naming_both():
    reg = make()
    with pytest.raises(DuplicatePluginError, match="tests.test_registry:Thing.*other:Thing"):
        reg.register("thing", "other:Thing")
    reg.register("thing", "tests.test_registry:Thing")  # the same target again is fine


def test_entry_points_are_read(monkeypatch):
    from importlib import metadata

    ep = metadata.EntryPoint(name="plug", value="tests.test_registry:Thing", group="mmlong.things")
    monkeypatch.setattr(metadata, "entry_points", lambda group: [ep] if group == "mmlong.things" else [])
    reg = Registry("thing", {}, entry_point_group="mmlong.things")
    assert reg.names() == ["plug"]
    assert reg.resolve("plug") is Thing


def test_builtin_compressors_are_listed_without_import():
    assert "tome" in COMPRESSORS.names("t*")
