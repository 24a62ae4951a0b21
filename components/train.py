"""Entry of a job pod's ranks: ``torchrun -m components.train sft|rl --config FILE [--init-prefix P]``.

Every rank of every pod runs this; it calls the same :func:`components.runtime.train_in_pod` as a
single-node task does under ``torchrun`` in its own pod. The config is the one the launcher
shipped, with this pod's mount paths applied (``OVR__ROLLOUT__WEIGHTS_DIR`` set by the job spec);
the run it belongs to comes from ``OVR_RUN_ID`` / ``OVR_MLFLOW_RUN_ID`` (also set by the job spec).
"""

from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage", choices=["sft", "rl"], help="The stage to train.")
    parser.add_argument("--config", required=True, help="Resolved config YAML (from the launcher).")
    parser.add_argument("--init-prefix", default=None, help="Store prefix of the starting model.")
    args = parser.parse_args(argv)

    from components.runtime import task_config, train_in_pod
    from ovr.context import RunContext

    cfg = task_config(args.config)
    result = train_in_pod(args.stage, cfg, RunContext.from_env(cfg), args.init_prefix)
    print(f"{args.stage} done: {result.model_dump_json()}", flush=True)


if __name__ == "__main__":
    main()
