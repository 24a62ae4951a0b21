"""Filters remove planted duplicates, near-duplicates, eval leaks and unverifiable items — and nothing else."""

from __future__ import annotations

from ovr.data import filters
from ovr.data.mix import apply_weight, shuffled
from ovr.data.prompts import bare_question, strip_instruction, to_prompt
from ovr.data.synthetic import text_samples, visual_samples
from ovr.schema import ImageRef, Message, Sample

LONG = (
    "A rectangular garden is twice as long as it is wide and its perimeter is sixty metres; "
    "a path one metre wide runs all around the outside of the garden. What is the area of the path"
)


def item(i: int, question: str, answer: str = "7", source: str = "src", images: list[bytes] = (), **kw) -> Sample:
    refs = [ImageRef.from_bytes(b) for b in images]
    return Sample(
        id=f"{source}-{i}",
        source=source,
        split=kw.pop("split", "rl"),
        prompt=to_prompt(question, len(refs)),
        images=refs,
        modality="image" if refs else "text",
        answer=answer,
        **kw,
    )


def test_prompt_normalisation_replaces_source_instructions():
    raw = "What is 2+2? Let's think step by step and output the final answer within \\boxed{}."
    assert strip_instruction(raw) == "What is 2+2?"
    prompt = to_prompt(raw)
    assert prompt.count("\\boxed{}") == 1 and bare_question(prompt) == "What is 2+2?"


def test_exact_duplicates_across_case_spacing_and_sources():
    a = item(1, "What is the  value of x?", source="s1")
    b = item(2, "what is the value of X ?", source="s2")
    c = item(3, "What is the value of y?")
    d = item(4, "What is the value of x?", images=[b"\x89PNG-fake-1"])  # same text, has an image: distinct
    kept, dropped = filters.drop_exact_duplicates([a, b, c, d])
    assert kept == [a, c, d] and [(s.id, r) for s, r in dropped] == [("s2-2", "exact duplicate")]


def test_near_duplicates_removed_distinct_questions_kept():
    a = item(1, LONG + "?")
    b = item(2, LONG.replace("sixty", "sixty-") + " in square metres?")  # reworded slightly
    c = item(3, "A circle has radius three; a square is inscribed in it. What is the area of the square?")
    kept, dropped = filters.drop_near_duplicates([a, b, c], threshold=0.8)
    assert kept == [a, c] and [r for _, r in dropped] == ["near duplicate"]
    kept, _ = filters.drop_near_duplicates([a, b, c], threshold=0.99)
    assert kept == [a, b, c]


def test_procedural_items_are_exempt_from_dedup():
    samples = text_samples(400, seed=0)  # tiny answer spaces: many repeated questions by design
    assert len(filters.drop_exact_duplicates(samples)[0]) == 400
    assert len(filters.drop_near_duplicates(samples, 0.9)[0]) == 400


def test_decontamination_by_ngram_image_and_exact_item():
    eval_items = [
        item(0, LONG + "?", split="eval", source="bench"),
        item(1, "Find the angle.", images=[b"\x89PNG-eval"], split="eval", source="bench"),
    ]
    leak = item(1, "Warm-up. " + LONG + " in square metres?")
    shared_image = item(2, "Something else entirely.", images=[b"\x89PNG-eval"])
    clean = item(3, "A circle has radius three. What is its area?")
    kept, dropped = filters.decontaminate([leak, shared_image, clean], eval_items, n=13)
    assert kept == [clean]
    assert [r for _, r in dropped] == ["eval contamination: shared 13-gram", "eval contamination: shared image"]
    kept, _ = filters.decontaminate([leak, clean], eval_items, n=None)
    assert kept == [leak, clean]


def test_procedural_items_decontaminated_only_by_exact_match():
    train = visual_samples(40, seed=0)
    eval_set = visual_samples(8, seed=0, split="eval")  # the same first 8 images: leaks
    kept, dropped = filters.decontaminate(train, eval_set, n=3)
    assert len(dropped) == 8 and kept == train[8:]


def test_unverifiable_items_dropped_with_reasons():
    good = item(1, "What is 1+1?", "2", answer_type="math")
    prose = item(2, "Prove it.", "See the proof above", answer_type="math")
    not_number = item(3, "How many?", "several", answer_type="number")
    bad_trace = item(
        4,
        "What is 2+2?",
        "4",
        split="sft",
        messages=[Message(role="user", content="q"), Message(role="assistant", content="\\boxed{5}")],
    )
    kept, dropped = filters.drop_unverifiable([good, prose, not_number, bad_trace])
    assert kept == [good]
    assert [r for _, r in dropped] == [
        "prose reference (no closed-form answer)",
        "reference not checkable by the reward",
        "trace's final answer does not match the reference",
    ]


def test_pass_rate_band_keeps_unmeasured():
    items = [item(i, f"q{i}", pass_rate=p) for i, p in enumerate([0.0, 0.5, 1.0, None])]
    kept, dropped = filters.pass_rate_band(items, (0.1, 0.9))
    assert [s.pass_rate for s in kept] == [0.5, None] and len(dropped) == 2


def test_mixing_weights_and_shuffle_are_seeded():
    base = text_samples(10, 0)
    half, double = apply_weight(base, 0.5, seed=1), apply_weight(base, 2.0, seed=1)
    assert len(half) == 5 and set(s.id for s in half) <= set(s.id for s in base)
    assert len(double) == 20 and len({s.id for s in double}) == 20
    assert apply_weight(base, 0.5, seed=1) == half and apply_weight(base, 0.5, seed=2) != half
    assert shuffled(base, 3) == shuffled(base, 3) != base


def test_parallel_verification_matches_in_process():
    items = [
        item(i, f"What is {i} + {i}?", str(2 * i) if i % 3 else "see the notes", answer_type="math") for i in range(40)
    ] + visual_samples(8, seed=0)
    done = []
    one = filters.drop_unverifiable(items, chunk=8)
    two = filters.drop_unverifiable(items, workers=2, chunk=8, progress=done.append)
    assert [s.id for s in two[0]] == [s.id for s in one[0]] and len(two[0]) == 34
    assert [(s.id, r) for s, r in two[1]] == [(s.id, r) for s, r in one[1]]
    assert sum(done) == 48 and all(s.images for s in two[0] if s.source == "synthetic_visual")
