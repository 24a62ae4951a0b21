"""Lightweight KFP components whose executor runs under ``torchrun`` in the task's own pod.

KFP starts a Python component as ``sh -ec '<write the source>; python3 -m kfp.dsl.executor_main
...' <source> --executor_input {{$}} --function_to_execute <fn>``. :func:`torchrun_component`
keeps that (the same source, executor and artifact handling, so ``kfp.local`` runs it too) and only
starts the executor as ``python3 -m torch.distributed.run`` (torchrun's module) with
``--nproc-per-node`` = the component's ``gpus_per_node`` input (1 when it is 0: a CPU pod), so a
single-node stage uses every GPU its pod reserved. Every rank runs the component function; the
function lets only rank 0 return (the others leave with ``SystemExit(0)``), so one executor writes
the task's outputs.
"""

from __future__ import annotations

from kfp.dsl.python_component import PythonComponent

NPROC_INPUT = "gpus_per_node"
#: $0 = the component's source, $1 = GPUs per node, then the executor's own arguments
SCRIPT = """program_path=$(mktemp -d)
printf "%s" "$0" > "$program_path/ephemeral_component.py"
nproc="$1"; shift
[ "$nproc" -ge 1 ] || nproc=1
_KFP_RUNTIME=true exec python3 -m torch.distributed.run --standalone --nproc-per-node="$nproc" \\
  -m kfp.dsl.executor_main --component_module_path "$program_path/ephemeral_component.py" "$@"
"""


def torchrun_component(component: PythonComponent) -> PythonComponent:
    """``component`` with its executor started by torchrun, one process per GPU of its pod."""
    inputs = component.component_spec.inputs or {}
    if NPROC_INPUT not in inputs:
        raise ValueError(f"{component.name} needs an input {NPROC_INPUT!r} to size torchrun")
    container = component.component_spec.implementation.container
    source = container.command[-1]
    if "kfp.dsl.executor_main" not in container.command[-2]:
        raise ValueError(f"{component.name} is not a lightweight Python component: {container.command[:2]}")
    container.command = ["sh", "-ec", SCRIPT, source]
    container.args = ["{{$.inputs.parameters['" + NPROC_INPUT + "']}}", *container.args]
    return component
