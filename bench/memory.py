"""Peak GPU memory of the 7B recipe's worst micro-batches, per length stage, at ZeRO-3 world size 8.

For every RL length stage of the recipe (24k, 32k, 48k responses) the bench builds the row mixes
that stress a packed micro-batch most (:mod:`bench.memory_mixes`: one long row, long + short rows,
short rows, image rows at the largest image ``model.max_pixels`` admits) and lets the trainer's own
batching (``Batcher`` with ``rl.max_tokens_per_micro``, ``pack_batch``) pick the fullest
micro-batch; for SFT, packed ``sft.max_seq_len`` rows of one or several documents through
``PackedCollator``. Each micro-batch is traced (:mod:`bench.memory_trace`) through the actor's and
the critic's micro-step (SFT: the Trainer's loss) on the published Qwen2.5-VL-7B architecture in
bf16 on fake tensors, with the recipe's MLP tiles and gradient checkpointing, at its full depth
(28 decoder layers: with images the peak of a shallow model lies in the vision tower's backward,
so a line through two shallow depths misses the full model's; ``--layers a b`` extrapolates
linearly from two depths instead, a quick approximation). To the traced
activations it adds, per GPU, the ZeRO-3 shards (bf16 parameters; fp32 master weights, Adam m and v
and fp32 gradient accumulation of the trainable ones; each over the world size; in RL actor and
critic are both resident) and the gathered-parameter working set (DeepSpeed's
``stage3_max_live_parameters`` and the largest module, in bf16, plus a bf16 reduce bucket).
The ratio column compares each mix with the single row the bench traced before micro-batches were
packed (``one row``), measured in the same run.

    PYTHONPATH=. .venv/bin/python -m bench.memory --out bench/results/memory.md
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.memory_mixes import Mix, largest_image_grid, rl_micro_batch, rl_mixes, sft_micro_batch, sft_mixes
from bench.memory_trace import FULL_LAYERS, TOY, fake_models, trace_step

GB = 1e9
REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Case:
    """One traced micro-batch: its stage, the step that trains on it, the row mix it came from."""

    stage: str  # "RL 24576", "SFT 65536"
    step: str  # key of bench.memory_trace.STEPS
    mix: Mix


@dataclass(frozen=True)
class ZeroSetup:
    """ZeRO-3 memory per GPU (bytes per parameter are those of DeepSpeed's bf16 + fp32-master mode)."""

    world: int = 8
    param_bytes: int = 2  # bf16 weights (partitioned)
    state_bytes: int = 4 + 4 + 4 + 4  # fp32 master, Adam m, Adam v, fp32 gradient accumulation (trainable only)
    max_live_parameters: int = 1_000_000_000  # DeepSpeed default (and ovr's SFT config)
    reduce_bucket: int = 500_000_000  # DeepSpeed's default reduce_bucket_size (elements)

    def shards(self, params: int, trainable: int) -> float:
        return (self.param_bytes * params + self.state_bytes * trainable) / self.world

    def working_set(self, largest_module: int) -> float:
        return 2 * (self.max_live_parameters + largest_module) + 2 * self.reduce_bucket


@dataclass(frozen=True)
class Recipe:
    """What of the recipe the traced micro-batches depend on."""

    rl_tokens: tuple[int, ...]  # longest response of each length stage
    budget: int  # rl.max_tokens_per_micro
    rl_tile: int | None  # rl.mlp_tile_tokens
    sft_len: int  # sft.max_seq_len
    sft_rows: int  # sft.micro_batch_size
    sft_tile: int | None  # sft.mlp_tile_tokens
    max_pixels: int  # model.max_pixels

    @classmethod
    def load(cls, path: Path) -> Recipe:
        from ovr.config import load_config

        cfg = load_config(path, use_env=False)
        stages = tuple(sorted({s.max_tokens for s in cfg.rl.max_response_len_schedule}))
        if cfg.rl.max_tokens_per_micro is None:
            raise SystemExit(f"{path}: rl.max_tokens_per_micro is unset (one micro-batch per rank): nothing to bound")
        return cls(
            rl_tokens=stages,
            budget=cfg.rl.max_tokens_per_micro,
            rl_tile=cfg.rl.mlp_tile_tokens,
            sft_len=cfg.sft.max_seq_len,
            sft_rows=cfg.sft.micro_batch_size,
            sft_tile=cfg.sft.mlp_tile_tokens,
            max_pixels=cfg.model.max_pixels or 12845056,  # None: Qwen2.5-VL's own default
        )


TOY_RECIPE = Recipe(
    rl_tokens=(48, 96), budget=192, rl_tile=64, sft_len=160, sft_rows=1, sft_tile=64, max_pixels=28 * 28 * 16
)
TOY_SIZES = {"long_prompt": 32, "short": (12, 12), "image_text": 8}  # row sizes of the toy mixes


def extrapolate(a: float, b: float, la: int, lb: int, to: int = FULL_LAYERS) -> tuple[float, float]:
    """Value at ``to`` layers from values at ``la`` and ``lb`` layers; also the per-layer slope."""
    slope = (b - a) / (lb - la)
    return a + (to - la) * slope, slope


def _counts(model, frozen_prefix: str | None) -> tuple[int, int, int]:
    params = sum(p.numel() for p in model.parameters())
    frozen = sum(p.numel() for n, p in model.named_parameters() if frozen_prefix and n.startswith(frozen_prefix))
    largest = max(sum(p.numel() for p in m.parameters(recurse=False)) for m in model.modules())
    return params, params - frozen, largest


def resident_bytes(models: dict[int, dict], zero: ZeroSetup) -> dict[str, float]:
    """ZeRO-3 shards + gathered working set per GPU of the full-depth RL (actor + critic) and SFT
    (LLM only trained) setups, from the parameter counts at the two traced depths (exactly linear)."""
    depths = sorted(models.items())

    def full(kind, frozen):
        if depths[-1][0] == FULL_LAYERS:
            return list(_counts(depths[-1][1][kind], frozen))
        (la, ma), (lb, mb) = depths[:2]
        a, b = _counts(ma[kind], frozen), _counts(mb[kind], frozen)
        return [round(extrapolate(x, y, la, lb)[0]) for x, y in zip(a[:2], b[:2])] + [max(a[2], b[2])]

    policy, critic, sft = full("policy", None), full("critic", None), full("policy", "model.visual")
    working = zero.working_set(policy[2])
    return {
        "rl": zero.shards(*policy[:2]) + zero.shards(*critic[:2]) + working,
        "sft": zero.shards(*sft[:2]) + working,
    }


def build_cases(recipe: Recipe, long_prompt: int = 2048, **sizes) -> list[Case]:
    """Every stage's cases; ``long_prompt`` (the long row's: with the stage's response it may exceed
    the budget, and then runs alone) and ``sizes`` (short rows, text beside an image:
    :func:`bench.memory_mixes.rl_mixes`) size the rows."""
    grid = largest_image_grid(recipe.max_pixels)
    tokens = grid[0] * grid[1] * grid[2] // 4
    cases = []
    for r in recipe.rl_tokens:
        for mix in rl_mixes(r, recipe.budget, long_prompt, tokens, **sizes):
            cases += [Case(f"RL {r}", "actor", mix), Case(f"RL {r}", "critic", mix)]
    return cases + [Case(f"SFT {recipe.sft_len}", "sft", mix) for mix in sft_mixes(recipe.sft_len)]


def trace_cases(cases: list[Case], recipe: Recipe, layers: tuple[int, ...], base: dict | None = None) -> dict:
    """``traces``: ``{case: {layers: Trace}}`` (a mix shared by stages is traced once);
    ``batches``: ``{case: (rows, images, tokens)}``; ``models``: the fake models per depth."""
    from ovr.models.tiling import tile_mlps, untile_mlps

    grid = largest_image_grid(recipe.max_pixels)
    models, traces, batches, done = {}, {}, {}, {}
    for n in layers:
        models[n] = fake_models(n, base)
        config = models[n]["policy"].config
        for case in cases:
            key = (case.step, case.mix.rows)
            if (key, n) not in done:
                if case.step == "sft":
                    batch, *desc = sft_micro_batch(case.mix, recipe.sft_len, recipe.sft_rows)
                else:
                    rope = models[n]["policy"].model.get_rope_index
                    batch, *desc = rl_micro_batch(case.mix, config, recipe.budget, grid, rope)
                model = models[n]["critic" if case.step == "critic" else "policy"]
                tile = recipe.sft_tile if case.step == "sft" else recipe.rl_tile
                with models[n]["mode"]:
                    untile_mlps(model)
                    if tile:
                        tile_mlps(model, tile)
                done[key, n] = (trace_step(model, case.step, batch, models[n]["mode"]), tuple(desc))
                del batch
            traces.setdefault(case, {})[n], batches[case] = done[key, n]
    kernels = sorted({k for t in traces.values() for tr in t.values() for k in tr.attention_kernels})
    return {"models": models, "traces": traces, "batches": batches, "kernels": kernels}


def activation_bytes(traced: dict, case: Case, layers: int = FULL_LAYERS) -> float:
    """Traced peak bytes of ``case`` above the weights at ``layers`` decoder layers: the trace at
    that depth, else a line through the two traced depths."""
    by_depth = traced["traces"][case]
    if layers in by_depth:
        return by_depth[layers].peak_bytes
    if len(by_depth) < 2:
        raise ValueError(f"{case.stage} {case.mix.name} was traced at {sorted(by_depth)} layers only, not {layers}")
    (la, ta), (lb, tb) = sorted(by_depth.items())[:2]
    return extrapolate(ta.peak_bytes, tb.peak_bytes, la, lb, to=layers)[0]


def peak_gb(traced: dict, case: Case, resident: dict[str, float], layers: int = FULL_LAYERS) -> float:
    """Peak GB per GPU of ``case`` at ``layers`` decoder layers: traced activations plus the
    resident ZeRO-3 shards and working set."""
    return (activation_bytes(traced, case, layers) + resident["sft" if case.step == "sft" else "rl"]) / GB


def markdown(cases: list[Case], traced: dict, resident: dict[str, float], limit_gb: float) -> tuple[str, bool]:
    """One table per stage (RL: actor and critic per mix), and whether every peak is within the limit."""
    lines, worst, ok = [], (0.0, ""), True
    for stage in dict.fromkeys(c.stage for c in cases):
        mine = [c for c in cases if c.stage == stage]
        sft = mine[0].step == "sft"
        head = "| mix | documents | tokens | peak GB/GPU | vs 1 document |" if sft else (
            "| mix | rows | images | tokens | actor GB/GPU | critic GB/GPU | vs one row |"
        )  # fmt: skip
        lines += [f"### {stage}", "", head, "|" + "---|" * (head.count("|") - 1)]
        base = max(peak_gb(traced, c, resident) for c in mine[: 2 if not sft else 1])
        for mix in dict.fromkeys(c.mix for c in mine):
            peaks = [peak_gb(traced, c, resident) for c in mine if c.mix == mix]
            rows, images, tokens = traced["batches"][next(c for c in mine if c.mix == mix)]
            ok &= max(peaks) <= limit_gb
            worst = max(worst, (max(peaks), f"{stage}, {mix.name}"))
            cells = [mix.name, str(rows)] + ([] if sft else [str(images)]) + [str(tokens)]
            cells += [f"{p:.1f}" for p in peaks] + [f"{max(peaks) / base:.2f}"]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    verdict = "yes" if ok else "no"
    lines.append(
        f"Within {limit_gb:.0f} GB per GPU at every stage: {verdict} (highest: {worst[1]} at {worst[0]:.1f} GB)."
    )
    return "\n".join(lines), ok


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipe", type=Path, default=REPO / "recipes/ovr-7b.yaml", help="the recipe to bound")
    p.add_argument("--rl-tokens", type=int, nargs="+", default=None, help="response stages (default: the recipe's)")
    p.add_argument("--budget", type=int, default=None, help="rl.max_tokens_per_micro (default: the recipe's)")
    p.add_argument("--sft-tokens", type=int, default=None, help="sft.max_seq_len (default: the recipe's)")
    p.add_argument("--max-pixels", type=int, default=None, help="model.max_pixels (default: the recipe's)")
    p.add_argument("--tile-tokens", type=int, default=None, help="MLP tile of RL and SFT (default: the recipe's)")
    p.add_argument(
        "--layers",
        type=int,
        nargs="+",
        default=[FULL_LAYERS],
        help="traced decoder depths: the full one, or two to extrapolate",
    )
    p.add_argument("--world", type=int, default=8, help="ZeRO-3 world size")
    p.add_argument("--limit-gb", type=float, default=70.0, help="exit 1 if a micro-batch exceeds this anywhere")
    p.add_argument("--toy", action="store_true", help="toy-sized architecture, recipe and rows (the bench's test)")
    p.add_argument("--out", type=Path, default=None, help="also write the Markdown here")
    args = p.parse_args(argv)
    if args.layers != [FULL_LAYERS] and (len(args.layers) != 2 or args.layers[0] >= args.layers[1]):
        p.error(f"--layers takes {FULL_LAYERS} (exact) or two increasing depths (extrapolated)")
    recipe, sizes = (TOY_RECIPE, TOY_SIZES) if args.toy else (Recipe.load(args.recipe), {})
    updates = {
        "rl_tokens": tuple(args.rl_tokens) if args.rl_tokens else None,
        "budget": args.budget,
        "sft_len": args.sft_tokens,
        "max_pixels": args.max_pixels,
        "rl_tile": args.tile_tokens,
        "sft_tile": args.tile_tokens,
    }
    recipe = Recipe(**(vars(recipe) | {k: v for k, v in updates.items() if v is not None}))
    t = time.perf_counter()
    cases = build_cases(recipe, **sizes)
    traced = trace_cases(cases, recipe, tuple(args.layers), TOY if args.toy else None)
    resident = resident_bytes(traced["models"], ZeroSetup(world=args.world))
    table, ok = markdown(cases, traced, resident, args.limit_gb)
    grid = largest_image_grid(recipe.max_pixels)
    name, arch = ("toy", "toy-sized") if args.toy else (args.recipe.name, "published config")
    notes = [
        f"Recipe {name}: rl.max_tokens_per_micro={recipe.budget} (real tokens), MLP tiles "
        f"{recipe.rl_tile} (RL) / {recipe.sft_tile} (SFT), sft.max_seq_len={recipe.sft_len} x "
        f"{recipe.sft_rows} row(s), model.max_pixels={recipe.max_pixels}: the largest image is a "
        f"{grid[1]}x{grid[2]}-patch grid, {grid[1] * grid[2] // 4} image tokens.",
        f"Qwen2.5-VL-7B ({arch}), bf16, traced on fake tensors "
        + (
            f"at its full {FULL_LAYERS} decoder layers and vision tower."
            if args.layers == [FULL_LAYERS]
            else f"at {args.layers[0]} and {args.layers[1]} decoder layers (the vision tower in full), extrapolated "
            f"linearly to {FULL_LAYERS} layers (approximate: image rows peak in the vision tower at shallow depths)."
        ),
        f"Attention kernels traced: {', '.join(traced['kernels'])} - PyTorch's varlen (flash) kernel, "
        "O(N) memory, one call per layer for the packed rows and for the vision tower's images/windows.",
        "Short rows: 256 + 256 tokens; image rows: 200 text + the largest image + 256 response tokens, each "
        "its own image; the long row: a 2048-token prompt + the stage's response (alone in its "
        "micro-batch when longer than the budget). Actor and critic both train with HF gradient checkpointing "
        "(vision blocks included).",
        f"ZeRO-3 at world size {args.world}: 2 B/param bf16 + 16 B/trainable param (fp32 master, Adam m, v, "
        "fp32 grad accumulation) / world; RL counts actor and critic resident together, SFT trains the LLM only; "
        f"plus the gathered working set: RL {resident['rl'] / GB:.1f} GB, SFT {resident['sft'] / GB:.1f} GB "
        "resident per GPU in all.",
        "Not counted: CUDA context, NCCL buffers, allocator fragmentation (the 70 GB bar leaves 10 GB for them).",
        f"Traced in {time.perf_counter() - t:.0f} s.",
    ]
    text = table + "\n\n" + "\n".join(f"- {n}" for n in notes) + "\n"
    print(text, end="")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
