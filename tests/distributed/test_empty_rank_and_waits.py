"""Two ranks on this CPU (``torchrun --nproc-per-node 2``, gloo) where waiting goes wrong on a cluster:

- a step with fewer kept groups than ranks: the rank that owns none must still enter every
  all-reduce of the update (batch whitening included), or the collectives pair up wrongly and the
  ranks hang until the group's timeout;
- a rank waiting for the main rank's rollout waits polled, and past its timeout names the late rank
  and the phase that rank last announced (no collective for the length of a rollout).
"""

from __future__ import annotations

import json

import pytest

HERE = "tests/distributed"


@pytest.mark.slow
def test_a_rank_without_a_group_enters_every_collective(torchrun, tiny_model_dir, tmp_path):
    out = tmp_path / "one-group"
    args = [f"{HERE}/rows_worker.py", "--model", str(tiny_model_dir), "--out", str(out), "--prompts", "1"]
    for s in ("rl.algorithm=ppo", "rl.dist_timeout_s=30", "rl.wait_timeout_s=30"):
        args += ["--set", s]
    torchrun(args, nproc=2, timeout=300)  # a rank left in a collective fails the run after 30 s
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["groups"] == [0] and ranks[1]["groups"] == []
    assert ranks[0]["metrics"] == ranks[1]["metrics"]  # both logged the same global figures
    m = ranks[0]["metrics"]
    # batch-whitened GAE over the one group's tokens only: rank 1's empty share added nothing
    assert m["adv_mean"] == pytest.approx(0.0, abs=1e-5) and m["adv_std"] == pytest.approx(1.0, abs=1e-3)
    assert m["actor_updated"] == 1.0


def test_a_waiting_rank_names_the_late_rank_within_its_timeout(torchrun, tmp_path):
    out = tmp_path / "wait"
    torchrun([f"{HERE}/wait_worker.py", "--out", str(out), "--timeout", "3"], nproc=2, timeout=120)
    main, other = (json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1))
    assert main["share"] == {"rows": [0, 1, 2]} and other["share"] == {"rows": [3, 4, 5]}  # each its own
    assert main["gathered"] == other["gathered"] == [0, 10]
    assert other["error"] is not None and 3.0 <= other["waited_s"] < 15.0
    assert "waiting for rank(s) 0" in other["error"] and "'step 7: share'" in other["error"]
    assert "rank 0 last reported 'step 7: rollout'" in other["error"]
