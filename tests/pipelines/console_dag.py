"""A two-task DAG run by kfp.local behind the run console (tests/pipelines/test_console.py runs this
file in its own process, since the console takes over file descriptors 1 and 2)."""

import sys
from pathlib import Path

from kfp import dsl, local


@dsl.component(install_kfp_package=False)
def build_data() -> str:
    import os

    print('{"executor": "noise", "outputs": {"parameterValues": {}}}')
    os.write(2, b"native stderr of a task\n")
    return "ok"


@dsl.component(install_kfp_package=False)
def train_rl(data: str, fail_at: int) -> str:
    from ovr.progress import StageProgress

    progress = StageProgress("rl", 5)
    for step in range(1, 6):
        print(f'INFO:     127.0.0.1:4242 - "POST /v1/completions HTTP/1.1" 200 OK step {step}')
        if step == fail_at:
            raise ValueError(f"reward service unreachable at step {step}")
        progress.update(step, {"reward_mean": step / 10, "accuracy": step / 10})
    return data


@dsl.pipeline(name="console-dag")
def console_dag(fail_at: int = 0) -> str:
    return train_rl(data=build_data().output, fail_at=fail_at).output


if __name__ == "__main__":
    from pipelines.console import RunConsole

    work, fail_at = Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 0
    with RunConsole(work / "run.log", work / "progress.jsonl") as con:
        local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(work / "kfp"), raise_on_error=True)
        print("from the parent, to the log")
        console_dag(fail_at=fail_at)
    con.console.print("after the run")
