"""Compile ``ovr_pipeline`` to the checked-in IR YAML (``pipelines/ovr_pipeline.yaml``).

``ovr pipeline compile`` writes it; a test recompiles and diffs, so the YAML in git always matches
the code. Image tags come from components/images.py (env-overridable at compile time).
"""

from __future__ import annotations

from pathlib import Path

COMPILED = Path(__file__).with_name("ovr_pipeline.yaml")


def compile_pipeline(out: str | Path = COMPILED) -> Path:
    from kfp import compiler

    from pipelines.ovr_pipeline import ovr_pipeline

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(ovr_pipeline, str(out))
    return out
