"""The dataset card: a Markdown summary of a build (mix, counts, drops, config), stored beside the shards."""

from __future__ import annotations

import yaml


def _table(header: list[str], rows: list[list]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return out


def _behaviour_lines(rates: dict | None) -> list[str]:
    """Share of cold-start assistant turns showing each detected behaviour, and the generator's trace kinds."""
    if not rates or not rates.get("responses"):
        return []
    names = [k for k in rates if k not in ("responses", "trace_kinds")]
    lines = [
        "## Behaviours in the cold-start traces",
        "",
        f"Share of the first {rates['responses']} assistant turns of `sft` showing each behaviour "
        "(`ovr.rewards.detectors`, the detectors eval and RL count with):",
        "",
    ]
    lines += _table(names, [[f"{rates[n]:.1%}" for n in names]]) + [""]
    if rates.get("trace_kinds"):
        kinds = ", ".join(f"{k}: {v}" for k, v in rates["trace_kinds"].items())
        lines += [f"Procedural trace kinds (`provenance.behaviour`): {kinds}.", ""]
    return lines


def render_card(meta: dict) -> str:
    """Markdown card of a build's manifest metadata (see :func:`ovr.data.build.build_dataset`)."""
    splits = meta["splits"]
    lines = [f"# Dataset `{meta['name']}`", ""]
    lines += [
        "Built by `ovr data build`. Splits: `sft` (language-only cold start, user + assistant turns), "
        "`rl` (prompts with checkable answers), `eval` (benchmarks; `source` names the benchmark). "
        "Read with `ovr.data.reader.iter_samples(store, name, split)`.",
        "",
        "## Mix",
        "",
    ]
    rows = []
    for split, info in splits.items():
        for source, n in info["sources"].items():
            share = n / info["count"] if info["count"] else 0.0
            rows.append([split, source, n, f"{share:.1%}"])
    lines += _table(["split", "source", "samples", "share of split"], rows) + [""]
    lines += ["## Splits", ""]
    lines += _table(
        ["split", "samples", "shards", "modalities"],
        [
            [s, i["count"], len(i["shards"]), ", ".join(f"{k}: {v}" for k, v in i["modalities"].items())]
            for s, i in splits.items()
        ],
    ) + [""]
    lines += _behaviour_lines(splits.get("sft", {}).get("behaviours"))
    lines += ["## Dropped items", ""]
    drops = [[src, reason, n] for src, reasons in meta["dropped"].items() for reason, n in reasons.items()]
    lines += (_table(["source", "reason", "items"], drops) if drops else ["Nothing was dropped."]) + [""]
    if drops:
        lines += ["Every dropped row, with its reason and detail: `dropped.jsonl` (one JSON object a line).", ""]
    lines += ["## Rows read per source", ""]
    lines += _table(["source", "rows"], [[k, v] for k, v in meta["read"].items()]) + [""]
    lines += ["## Build config", "", "```yaml", yaml.safe_dump(meta["config"], sort_keys=False).rstrip(), "```", ""]
    return "\n".join(lines)
