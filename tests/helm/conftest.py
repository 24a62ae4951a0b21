"""Fixtures of the chart tests; the render helpers live in :mod:`chart_kit`."""

from __future__ import annotations

from typing import Any

import pytest
from chart_kit import CI_VALUES, load_values, with_required


@pytest.fixture(params=[None, *CI_VALUES], ids=lambda p: "defaults" if p is None else p.name)
def values_case(request) -> tuple[str, dict[str, Any]]:
    """(label, values) for the defaults (with :data:`REQUIRED`) and each ci/ values file."""
    if request.param is None:
        return "defaults", with_required({})
    return request.param.name, load_values(request.param)
