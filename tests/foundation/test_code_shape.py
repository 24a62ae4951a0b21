"""The library reads in one screen at a time: no function in ovr/ over 80 lines, no source file of
the project over 400 lines."""

from __future__ import annotations

import ast

MAX_FUNCTION_LINES = 80
MAX_FILE_LINES = 400


def _sources(repo_root, *folders):
    return sorted(p for folder in folders for p in (repo_root / folder).rglob("*.py"))


def test_no_function_in_the_library_is_over_80_lines(repo_root):
    long = []
    for path in _sources(repo_root, "ovr"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(repo_root)}:{node.lineno} {node.name} ({n} lines)")
    assert long == []


def test_no_source_file_is_over_400_lines(repo_root):
    big = [
        f"{p.relative_to(repo_root)} ({n})"
        for p in _sources(repo_root, "ovr", "services", "components", "pipelines")
        if (n := p.read_text().count("\n")) > MAX_FILE_LINES
    ]
    assert big == []
