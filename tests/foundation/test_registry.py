"""The shared named registry behind rewards, data adapters and advantage estimators."""

import pytest

from ovr.registry import Registry


def test_register_get_duplicates_and_unknown_names():
    loaded = []
    reg = Registry("widget", loader=lambda: loaded.append(True) or reg.add("builtin", 1))
    reg.register("mine")(2)
    assert reg.names() == ["builtin", "mine"] and loaded == [True]
    assert reg.get("mine") == 2 and "builtin" in reg
    with pytest.raises(ValueError, match="widget 'mine' is already registered"):
        reg.add("mine", 3)
    assert reg.get("mine") == 2  # the first registration stands
    with pytest.raises(KeyError, match=r"unknown widget 'nope'; registered: \['builtin', 'mine'\]"):
        reg.get("nope")
    assert loaded == [True]  # the loader runs once
