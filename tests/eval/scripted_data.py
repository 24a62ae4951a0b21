"""Eval questions with known answers and scripted model responses, shared by the eval tests.

Five questions: three text ones (benchmark ``arith``) and two images (``synthetic_visual``); the
policy rules give each exactly 4 responses whose correctness is known, so avg@4 is hand-computable:
arith = (0.5 + 0.0 + 1.0) / 3, synthetic_visual = (0.75 + 0.25) / 2.
"""

from __future__ import annotations

from ovr.data.synthetic import visual_samples
from ovr.schema import Sample

TEMPLATE = "\nPlease reason step by step, and put your final answer within \\boxed{}."


def samples() -> list[Sample]:
    text = [
        Sample(
            id="t1",
            source="arith",
            split="eval",
            prompt="[t1] What is 2+3?" + TEMPLATE,
            answer="5",
            answer_type="math",
            subject="add",
        ),
        Sample(
            id="t2",
            source="arith",
            split="eval",
            prompt="[t2] What is 3+4?" + TEMPLATE,
            answer="7",
            answer_type="math",
            subject="add",
        ),
        Sample(
            id="t3",
            source="arith",
            split="eval",
            prompt="[t3] What is 2*3?" + TEMPLATE,
            answer="6",
            answer_type="math",
            subject="mul",
        ),
    ]
    vis = visual_samples(2, seed=0, tasks=["count_shapes"], split="eval")
    vis = [v.model_copy(update={"id": f"v{i}", "prompt": f"[v{i}] " + v.prompt}) for i, v in enumerate(vis)]
    return text + vis


def policy_rules(vis: list[Sample]) -> list[dict]:
    a0, a1 = vis[0].answer, vis[1].answer
    wrong0 = str(int(a0) + 1)
    return [
        # t1: 2 of 4 correct -> 0.5
        {"match": "[t1]", "responses": ["So \\boxed{5}", "Wait, it is \\boxed{6}", "It is \\boxed{5}.", "no idea"]},
        # t2: 0 of 4 (the last one is right but truncated: scores 0) -> 0.0
        {
            "match": "[t2]",
            "responses": ["\\boxed{8}", "\\boxed{1}", "\\boxed{9}", "\\boxed{7} and then more"],
            "finish_reasons": ["stop", "stop", "stop", "length"],
        },
        # t3: 4 of 4 -> 1.0
        {"match": "[t3]", "responses": ["\\boxed{6}"] * 4},
        # v0: 3 of 4 -> 0.75 ; v1: 1 of 4 -> 0.25
        {
            "match": "[v0]",
            "responses": [
                f"Wait, recheck \\boxed{{{a0}}}",
                f"\\boxed{{{a0}}}",
                f"\\boxed{{{a0}}}",
                f"\\boxed{{{wrong0}}}",
            ],
        },
        {"match": "[v1]", "responses": [f"\\boxed{{{a1}}}", "wait, \\boxed{x}", "\\boxed{x}", "\\boxed{x}"]},
    ]


def judge_rules() -> list[dict]:
    return [
        {"match": "any verification steps", "responses": ["One check here. <count>1</count>"]},
        {"match": "any backtracking steps", "responses": ["I would say a couple."]},  # malformed: unknown
        {"match": "any visual reflection steps", "responses": ["<count>0</count>"]},
    ]


def improved_rules(vis: list[Sample]) -> list[dict]:
    """A "later checkpoint": every question answered correctly 4 of 4 times, with reflection words."""
    answers = {"t1": "5", "t2": "7", "t3": "6", "v0": vis[0].answer, "v1": vis[1].answer}
    return [{"match": f"[{q}]", "responses": [f"Wait, let me recheck. \\boxed{{{a}}}"] * 4} for q, a in answers.items()]


def run_on(cfg, url: str, mlflow_run_id: str | None = None):
    """The run context of an eval of the model served at ``url``, logging into ``mlflow_run_id``."""
    from ovr.context import RunContext

    return RunContext.for_config(cfg, "t1", mlflow_run_id).with_(rollout_endpoints=[url])


def served(cfg, url: str, reward_url: str | None = None):
    """``cfg`` pointed at the rollout server ``url`` (and the reward service, if given)."""
    cfg = cfg.model_copy(deep=True)
    cfg.rollout.endpoints = [url]
    cfg.reward.url = reward_url
    return cfg
