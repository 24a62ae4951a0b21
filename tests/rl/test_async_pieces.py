"""Async RL without servers: the behaviour weights, the skipped old-log-prob forward, the staleness
bound through the producer's gate, and the queue file a checkpoint carries."""

from __future__ import annotations

import copy
import threading
import time
from types import SimpleNamespace

import pytest
import torch

from ovr.config import RLConfig, load_config
from ovr.distributed import Dist
from ovr.rl import async_queue as Q
from ovr.rl.correction import behaviour_weights
from ovr.rl.experience import Experience
from ovr.rl.forward import encode_prompt
from ovr.rl.producer import Producer
from ovr.rl.share import RowShare
from ovr.rl.state import PromptCursor
from ovr.rl.step import old_logprobs_are_current, train_share
from ovr.rl.update import Batcher, score_rows
from ovr.rollout.scoring import Scored
from ovr.schema import Completion, RolloutGroup, Sample, ScoreResult


def test_truncated_and_masked_behaviour_weights_by_hand():
    old = torch.log(torch.tensor([[0.5, 0.5, 0.5, 0.5]]))
    behav = torch.log(torch.tensor([[0.5, 0.1, 0.4, float("nan")]])).nan_to_num(nan=float("nan"))
    behav[0, 3] = float("nan")  # a token vLLM gave no log-prob for: weight 1, outside the statistics
    mask = torch.ones(1, 4)
    w, s = behaviour_weights(old, behav, mask, "tis", cap=2.0, floor=0.5)
    assert w.tolist()[0] == pytest.approx([1.0, 2.0, 1.25, 1.0])  # ratios 1, 5 (cut at 2), 1.25
    assert s["tokens"] == 3 and s["is_clipped"] == 1 and s["is_weight_max"] == pytest.approx(5.0)
    assert s["is_weight_sum"] == pytest.approx(4.25)
    w, s = behaviour_weights(old, behav, mask, "icepop", cap=2.0, floor=0.5)
    assert w.tolist()[0] == pytest.approx([1.0, 0.0, 1.25, 1.0]) and s["is_clipped"] == 1  # 5 leaves the band
    w, _ = behaviour_weights(old, behav, mask, "none", cap=2.0, floor=0.5)
    assert w.tolist()[0] == [1.0, 1.0, 1.0, 1.0]


def test_config_keeps_sync_the_default_and_async_is_one_override():
    for recipe in ("recipes/ovr-7b.yaml", "recipes/tiny-cpu.yaml"):
        cfg = load_config(recipe, use_env=False)
        assert cfg.rl.max_staleness == 0 and cfg.rl.is_correction == "none"
    cfg = load_config("recipes/ovr-7b.yaml", ["rl.max_staleness=1"], use_env=False)
    assert cfg.rl.is_correction == "icepop" and cfg.rl.inflight_on_push == "continue"
    assert RLConfig(max_staleness=1, is_correction="tis").is_correction == "tis"
    with pytest.raises(ValueError, match="max_staleness"):
        RLConfig(max_staleness=-1)


# ---------------------------------------------------------------------- one step's update
def _rows(processor, visual, logprobs=None):
    prompts = [encode_prompt(processor, s) for s in visual[:2]]
    responses = [[40, 41, 42], [60, 61, 62, 63], [70, 71], [80, 81, 82]]
    scores = [1.0, 0.0, 0.0, 1.0]
    return [
        Experience(prompts[i // 2], r, s, s, i // 2, False, (logprobs or {}).get(i, []), 0)
        for i, (r, s) in enumerate(zip(responses, scores))
    ]


def _run(processor, actor, **rl):
    """What :func:`train_share` reads of an RL run: GRPO on the actor alone, one process."""
    from ovr.rl.engine import make_engine

    cfg = RLConfig(**{"algorithm": "grpo", "warmup_steps": 0, "actor_lr": 1e-3, **rl})
    return SimpleNamespace(
        rl=cfg,
        dist=Dist(),
        cfg=SimpleNamespace(rollout=SimpleNamespace(temperature=1.0)),
        pad_id=processor.tokenizer.pad_token_id,
        image_token_id=processor.tokenizer.convert_tokens_to_ids("<|image_pad|>"),
        device="cpu",
        dtype=torch.float32,
        actor=actor,
        actor_engine=make_engine(actor, lr=cfg.actor_lr, rl=cfg, device="cpu"),
        critic=None,
        critic_engine=None,
        ref=None,
    )


def _own_logprobs(processor, visual, actor) -> dict[int, list[float]]:
    rows = _rows(processor, visual)
    image_id = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    b = Batcher(rows, processor.tokenizer.pad_token_id, image_id, "cpu", torch.float32)
    logp, _ = score_rows(b, actor=actor)
    return {i: lp.tolist() for i, lp in enumerate(logp)}


def test_is_weights_equal_one_on_policy_and_the_update_is_plain_ppos(processor, visual, tiny_model_dir):
    """The sampler's log-probs are the trainer's own (on-policy, same numerics): every weight is 1,
    none is clipped, and the update equals the uncorrected one."""
    from transformers import AutoModelForImageTextToText

    load = lambda: AutoModelForImageTextToText.from_pretrained(str(tiny_model_dir))  # noqa: E731
    own = _own_logprobs(processor, visual, load())
    results = {}
    for mode in ("tis", "none"):
        actor = load()
        run = _run(processor, actor, is_correction=mode, skip_old_logprobs=False)
        rows = _rows(processor, visual, own)
        metrics = train_share(run, RowShare(rows, 2, rows[0], True), max_tokens=4, step=0)
        results[mode] = (metrics, {k: v.detach().clone() for k, v in actor.named_parameters()})
    tis, none = results["tis"][0], results["none"][0]
    assert tis["is_weight_mean"] == pytest.approx(1.0, abs=1e-6) and tis["is_weight_max"] == pytest.approx(
        1.0, abs=1e-6
    )
    assert tis["is_clip_frac"] == 0.0 and tis["logprob_drift"] < 1e-6
    assert tis["policy_loss"] == pytest.approx(none["policy_loss"], abs=1e-7)
    for name, p in results["tis"][1].items():
        assert torch.allclose(p, results["none"][1][name], atol=1e-7), name


def test_skipping_the_old_logprob_forward_gives_the_same_update(processor, visual, tiny_model_dir):
    from transformers import AutoModelForImageTextToText

    out = {}
    for skip in (True, False):
        actor = AutoModelForImageTextToText.from_pretrained(str(tiny_model_dir))
        run = _run(processor, actor, skip_old_logprobs=skip)
        assert old_logprobs_are_current(run) == skip
        rows = _rows(processor, visual)
        metrics = train_share(run, RowShare(rows, 2, rows[0], True), max_tokens=4, step=0)
        out[skip] = (metrics, {k: v.detach().clone() for k, v in actor.named_parameters()})
    (m_skip, w_skip), (m_full, w_full) = out[True], out[False]
    assert m_skip["old_logprobs_skipped"] == 1.0 and m_full["old_logprobs_skipped"] == 0.0
    for key in ("policy_loss", "entropy", "actor_grad_norm", "clip_frac", "approx_kl"):
        assert m_skip[key] == pytest.approx(m_full[key], rel=1e-5, abs=1e-7), key
    for name, p in w_skip.items():
        assert torch.allclose(p, w_full[name], atol=1e-6), name
    # not provable: several updates per generation, or a reward-side KL computed from the old log-probs
    actor = AutoModelForImageTextToText.from_pretrained(str(tiny_model_dir))
    assert not old_logprobs_are_current(_run(processor, actor, policy_updates=2))
    assert not old_logprobs_are_current(_run(processor, actor, algorithm="reinforce_pp", kl_reward_coef=0.1))


# ---------------------------------------------------------------------- the producer and its queue
def _prompts(n: int) -> list[Sample]:
    return [Sample(id=f"p{i}", source="t", split="rl", prompt=f"q{i}", answer="1") for i in range(n)]


class FakeServices:
    """The replicas as the producer sees them: a version counter the 'trainer' bumps on each push,
    and a sampler that labels every response with the version it was served at when the request
    started (and, when a push lands while it 'generates', the version after)."""

    def __init__(self, gen_s: float):
        self.version = 1  # the first push happened
        self.gen_s = gen_s
        self.calls: list[tuple[int, int]] = []  # (steps finished when called, version)
        self.rollout = SimpleNamespace(busy_s=0.0)
        self.sync = SimpleNamespace(last_pause_s=0.0, pause_mode=None)
        self.lock = threading.Lock()

    def sample(self, producer):
        def fn(prompts: list[Sample], max_tokens: int) -> Scored:
            start = self.version
            self.calls.append((producer.finished, start))
            time.sleep(self.gen_s)
            end = self.version
            groups = [
                RolloutGroup(
                    sample_id=s.id,
                    completions=[
                        Completion(
                            text="a",
                            token_ids=[1, 2],
                            logprobs=[-1.0, -1.0],
                            weight_version=start,
                            weight_version_max=end if end > start else None,
                        )
                        for _ in range(2)
                    ],
                )
                for s in prompts
            ]
            results = [ScoreResult(overall=v, accuracy=v) for _ in prompts for v in (0.0, 1.0)]
            return Scored(groups, results, rollout_s=self.gen_s, reward_s=0.0)

        return fn


def _fake_run(k: int, steps: int, first: int = 0, version: int = 1):
    rl = RLConfig(algorithm="grpo", max_staleness=k, max_steps=steps, prompts_per_step=2, samples_per_prompt=2)
    state = SimpleNamespace(step=first, weight_version=version, cursor=PromptCursor(20, seed=0))
    return SimpleNamespace(rl=rl, state=state, samples=_prompts(20), cfg=SimpleNamespace(rollout=None))


def _train(producer, run, svc, steps, train_s):
    """The trainer's side: take each step's batch, 'train', push (bump the version) when it had
    groups, say done."""
    seen = []
    for step in range(run.state.step, steps):
        got, m = producer.take(step)
        seen.append((step, m, [got.groups[i].sample_id for i in got.keep]))
        time.sleep(train_s)
        if got.keep:
            svc.version += 1
            run.state.weight_version = svc.version
        producer.done(step)
        run.state.step = step + 1
    return seen


@pytest.mark.parametrize("k", [1, 2])
def test_the_producer_runs_ahead_but_never_trains_a_sample_older_than_the_bound(k):
    run, svc = _fake_run(k, steps=6), FakeServices(gen_s=0.05)
    producer = Producer(run, svc, sample=None)
    producer.sample = svc.sample(producer)
    producer.thread.start()
    try:
        seen = _train(producer, run, svc, 6, train_s=0.15)
    finally:
        producer.stop()
    ages = [m["staleness_max"] for _, m, _ in seen]
    assert max(ages) == k and all(a <= k for a in ages)  # it ran k steps ahead, never further
    # batch b started only once step b - k - 1 had finished: the gate is the bound
    for b, (finished, _) in enumerate(svc.calls):
        assert finished >= b - k
    assert [len(ids) for _, _, ids in seen] == [2] * 6 and all(m["async/dropped_stale_groups"] == 0 for _, m, _ in seen)


def test_a_resumed_queue_trains_its_groups_first_and_drops_what_the_bound_no_longer_allows(tmp_path):
    # k = 2 until the checkpoint after step 1: batches 0-2 start at policy 0, batch 3 at policy 1
    run, svc = _fake_run(2, steps=4), FakeServices(gen_s=0.01)
    producer = Producer(run, svc, sample=None)
    producer.sample = svc.sample(producer)
    producer.thread.start()
    seen = _train(producer, run, svc, 2, train_s=0.2)
    time.sleep(0.2)  # batch 3 is generated
    producer.save(tmp_path)
    producer.stop()
    saved = Q.load((tmp_path / Q.FILE).read_bytes())
    assert [b.step for b in saved.batches] == [2, 3] and saved.policy_version == 2
    assert [Q.oldest(b.got.groups[0], b.offset) for b in saved.batches] == [0, 1]
    assert [r["step"] for r in saved.trained] == [0, 1] and [s for s, _, _ in seen] == [0, 1]
    expected = Q.queued_records(saved)

    # resumed with a fresh replica (its version counter restarted) and the bound lowered to 1
    run2, svc2 = _fake_run(1, steps=6, first=2, version=1), FakeServices(gen_s=0.01)
    producer2 = Producer(run2, svc2, sample=None, restored=copy.deepcopy(saved))
    producer2.sample = svc2.sample(producer2)
    assert producer2.policy_version == 2 and producer2.next_step == 4
    assert vars(producer2.cursor) == vars(saved.cursor)
    producer2.thread.start()
    try:
        resumed = _train(producer2, run2, svc2, 4, train_s=0.0)
    finally:
        producer2.stop()
    trained = producer2.trained
    # step 2 (policy 2) would train policy-0 groups: staleness 2 > 1, dropped and counted; no update
    assert resumed[0][1]["async/dropped_stale_groups"] == 2 and trained[0]["groups"] == []
    # step 3 (still policy 2) trains the saved policy-1 groups, exactly those
    assert trained[1] == expected[1] and resumed[1][1]["staleness_max"] == 1


def test_the_queue_file_round_trips_groups_scores_versions_and_cursors():
    group = RolloutGroup(
        sample_id="p1",
        prompt_token_ids=[5, 6],
        completions=[
            Completion(text="x", token_ids=[1, 2, 3], logprobs=[-0.5, -0.25, -1.0], weight_version=4),
            Completion(
                text="y", token_ids=[7], logprobs=[-2.0], finish_reason="length", weight_version=4, weight_version_max=5
            ),
        ],
    )
    from ovr.rl.sampling import Collected

    cursor = PromptCursor(10, seed=3, epoch=1, index=4)
    got = Collected(
        [group],
        [ScoreResult(overall=1.0, accuracy=1.0, reflection={"wait": 2}), ScoreResult(overall=0.0, accuracy=0.0)],
        keep=[0],
        rounds=1,
        rollout_s=2.0,
        reward_s=0.5,
        cursor=cursor,
    )
    state = Q.QueueState(
        7,
        PromptCursor(10, seed=3, epoch=1, index=6),
        [Q.Batch(5, got, offset=2, generation_s=3.0)],
        trained=[{"step": 4, "groups": []}],
    )
    back = Q.load(Q.dump(state))
    (b,) = back.batches
    assert b.step == 5 and b.offset == 2 and b.got.groups == [group] and b.got.results == got.results
    assert b.got.keep == [0] and vars(b.got.cursor) == vars(cursor) and vars(back.cursor) == vars(state.cursor)
    assert back.policy_version == 7 and back.trained == state.trained
    assert Q.oldest(b.got.groups[0], b.offset) == 6
