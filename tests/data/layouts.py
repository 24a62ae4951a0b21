"""Every source fixture: the Hugging Face copies (``source_layouts``) and the authors' release
layouts (``release_layouts``), by fixture name."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from release_layouts import RELEASES
from source_layouts import WRITERS, mathverse_text_only

# fixture name -> (adapter, writer); a fixture named after its adapter is that adapter's hub copy
LAYOUTS = (
    {name: (name, write) for name, write in WRITERS.items()}
    | RELEASES
    | {
        "mathverse_text_only": ("mathverse", mathverse_text_only),
    }
)


@dataclass(frozen=True)
class Layout:
    """One written fixture: the adapter that reads it, where it is, its extra source fields and the
    number of rows that must load."""

    adapter: str
    path: Path
    fields: dict = field(default_factory=dict)
    expected: int = 0

    def source(self, name: str, **options) -> dict:
        """A DataSourceConfig dict for this fixture (``options`` added to the fixture's own)."""
        from ovr.data.registry import get_adapter

        fields = dict(self.fields)
        fields["options"] = {**fields.get("options", {}), **options}
        return {
            "adapter": self.adapter,
            "name": name,
            "path": str(self.path),
            "split": get_adapter(self.adapter).split,
            **fields,
        }


def write_all(root: Path) -> dict[str, Layout]:
    out = {}
    for name, (adapter_name, write) in LAYOUTS.items():
        path, fields, expected = write(root)
        out[name] = Layout(adapter_name, path, fields, expected)
    return out
