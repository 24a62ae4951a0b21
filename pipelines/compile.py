"""Compile ``ovr_pipeline`` to the checked-in IR YAML (``pipelines/ovr_pipeline.yaml``).

``ovr pipeline compile`` writes it; a test recompiles and diffs, so the YAML in git always matches
the code. Image tags come from components/images.py (env-overridable at compile time).

Helm packages only files inside the chart, so compiling also refreshes the chart's copies of the
compiled pipeline and of ``recipes/*.yaml`` (``helm/ovr/files/``); tests check they match.
"""

from __future__ import annotations

import shutil
from pathlib import Path

COMPILED = Path(__file__).with_name("ovr_pipeline.yaml")
REPO = COMPILED.parents[1]
CHART_FILES = REPO / "helm" / "ovr" / "files"


def compile_pipeline(out: str | Path = COMPILED) -> Path:
    from kfp import compiler

    from pipelines.ovr_pipeline import ovr_pipeline

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(ovr_pipeline, str(out))
    if out.resolve() == COMPILED.resolve():
        sync_chart_files()
    return out


def sync_chart_files() -> None:
    """Copy the compiled pipeline and the recipes into the chart."""
    (CHART_FILES / "pipelines").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(COMPILED, CHART_FILES / "pipelines" / COMPILED.name)
    (CHART_FILES / "recipes").mkdir(parents=True, exist_ok=True)
    for recipe in sorted((REPO / "recipes").glob("*.yaml")):
        shutil.copyfile(recipe, CHART_FILES / "recipes" / recipe.name)
