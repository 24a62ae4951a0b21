"""The report's transfer story: the SFT-data figures read back from the store, and the verdict
sentences, each word choice following the numbers."""

from __future__ import annotations

from ovr.eval.transfer import Row, pays_table, rates_table, verdict


def test_report_counts_the_sft_split_of_a_dataset_built_without_the_figures(eval_cfg):
    """An older build's manifest has no ``behaviours``: the report counts the stored split itself."""
    from ovr.data.build import build_dataset
    from ovr.eval.transfer import sft_data_rates
    from ovr.store import Store

    cfg = eval_cfg(
        "data.synthetic.text_samples=40",
        "data.synthetic.visual_samples=0",
        "data.synthetic.eval_samples=0",
        "data.synthetic.behaviours={reflect: 1.0}",
    )
    store = Store.from_config(cfg.store)
    assert sft_data_rates(cfg) is None  # nothing built yet
    built = build_dataset(cfg, store, progress=False)["metadata"]["splits"]["sft"]
    assert sft_data_rates(cfg) == built["behaviours"] and built["behaviours"]["reflection"] == 1.0
    prefix = f"datasets/{cfg.data.dataset_id}"
    manifest = store.read_manifest(prefix)
    del manifest.metadata["splits"]["sft"]["behaviours"]
    store.put_bytes(f"{prefix}/manifest.json", manifest.model_dump_json().encode())
    again = sft_data_rates(cfg)
    assert again["responses"] == built["count"] and again["reflection"] == 1.0 and again["verification"] == 0.0


def _rows(data=0.25, sft_text=0.2, sft_image=0.1, rl_image=0.3, with_=0.8, without=0.4, n=200):
    r = lambda v: {"reflection": v, "verification": 0.0, "backtracking": 0.0}  # noqa: E731
    acc = ({"reflection": with_}, {"reflection": without})
    return [
        Row("SFT data", "text", 1000, r(data)),
        Row("SFT model", "text", n, r(sft_text)),
        Row("SFT model", "image", n, r(sft_image), *acc),
        Row("RL model", "text", n, r(0.2)),
        Row("RL model", "image", n, r(rl_image), *acc),
    ]


def test_verdict_says_transfer_and_that_rl_kept_what_pays():
    text = verdict(_rows())
    assert text.startswith("This run shows transfer: reflection from the language-only cold start shows up")
    assert "its image answers 10.0 % (image / text 0.50)" in text
    assert (
        "RL amplified it (10.0 % → 30.0 % of the answers); before RL, answers with it were right 80.0 % of the "
        "time vs 40.0 % without (20 of 200 show it): it pays; RL kept the behaviour that pays; after RL, "
        "answers with it were right 80.0 %"
    ) in text


def test_verdict_follows_the_numbers():
    dropped = verdict(_rows(rl_image=0.02, with_=0.9, without=0.3))
    assert "RL suppressed it" in dropped and "RL dropped a behaviour that paid" in dropped
    costs = verdict(_rows(with_=0.1, without=0.5))
    assert "it costs; RL amplified a behaviour that cost accuracy" in costs
    even = verdict(_rows(rl_image=0.0, with_=0.5, without=0.52))
    assert "it makes no clear difference; RL dropped a behaviour that did not pay." in even
    few = verdict(_rows(n=40))  # 4 image answers reflect: too few to judge
    assert "too few answers with and without it (4 of 40) to tell whether it pays" in few and "RL kept" not in few
    none = verdict(_rows(sft_image=0.0, rl_image=0.0))
    assert none.startswith("This run shows no transfer: no behaviour of the cold-start data shows up in image")
    assert "does not transfer: 25.0 % of the cold-start traces, the SFT model's text answers 20.0 %" in none
    unlearnt = verdict(_rows(sft_text=0.0, sft_image=0.0, rl_image=0.0))
    assert "but the SFT model hardly does" in unlearnt
    nothing = verdict(_rows(data=0.0, sft_text=0.0, sft_image=0.0, rl_image=0.0))
    assert nothing.startswith("This run shows no transfer") and "0.0 % of the cold-start traces" in nothing
    empty = [Row("SFT data", "text", 10, {"reflection": 0.0})]
    assert verdict(empty).startswith("No behaviour shows up")


def test_tables():
    rates = rates_table(_rows())
    assert "| stage | questions | responses | reflection % | verification % | backtracking % |" in rates
    assert "| SFT data | text | 1000 | 25.0 | 0.0 | 0.0 |" in rates
    pays = pays_table(_rows())
    assert "SFT data" not in pays and "| RL model | image | 60 of 200 | 80.0 | 40.0 | +40.0 |" in pays
    assert "| SFT model | text | 40 of 200 | – | – | – |" in pays
