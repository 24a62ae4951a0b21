#!/usr/bin/env bash
# Create or refresh ovr's two virtual environments, idempotently.
#   .venv          the project: trainer, services, components, tests  (pyproject.toml [dev])
#   .venv-rollout  the vLLM engine on CPU                              (requirements/rollout-cpu.txt)
# Usage: scripts/env/make_venvs.sh [project|rollout|all]
# A stamp file holding the hash of the inputs makes a second run a no-op (about a second).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python3}
TORCH_VERSION=${OVR_TORCH_VERSION:-2.13.0}     # CPU build on these machines (local wheel)
TORCHVISION_VERSION=${OVR_TORCHVISION_VERSION:-0.28.0}
what=${1:-all}

quiet_pip() {  # pip, minus the noise of absent local index folders
  "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
}

stamp_of() { cat "$@" scripts/env/make_venvs.sh scripts/env/fix_cpu_torch_extras.py | sha256sum | cut -c1-16; }

make_project() {
  local venv=.venv stamp; stamp=$(stamp_of pyproject.toml)
  if [ -f $venv/.ovr-stamp ] && [ "$(cat $venv/.ovr-stamp)" = "$stamp" ]; then return; fi
  echo "==> building $venv (torch $TORCH_VERSION, project [dev])"
  local t0=$SECONDS
  [ -x $venv/bin/python ] || $PY -m venv $venv
  quiet_pip $venv/bin/python -m pip install -q --upgrade pip
  quiet_pip $venv/bin/python -m pip install -q "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION"
  quiet_pip $venv/bin/python -m pip install -q -e ".[dev]" "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION"
  $venv/bin/python scripts/env/fix_cpu_torch_extras.py
  echo "$stamp" > $venv/.ovr-stamp
  echo "==> $venv ready in $((SECONDS - t0)) s, $(du -sh $venv | cut -f1)"
}

make_rollout() {
  local venv=.venv-rollout stamp; stamp=$(stamp_of requirements/rollout-cpu.txt)
  if [ -f $venv/.ovr-stamp ] && [ "$(cat $venv/.ovr-stamp)" = "$stamp" ]; then return; fi
  echo "==> building $venv (vLLM on CPU)"
  local t0=$SECONDS
  [ -x $venv/bin/python ] || $PY -m venv $venv
  quiet_pip $venv/bin/python -m pip install -q --upgrade pip
  quiet_pip $venv/bin/python -m pip install -q -r requirements/rollout-cpu.txt
  $venv/bin/python scripts/env/fix_cpu_torch_extras.py
  echo "$stamp" > $venv/.ovr-stamp
  echo "==> $venv ready in $((SECONDS - t0)) s, $(du -sh $venv | cut -f1)"
}

case "$what" in
  project) make_project ;;
  rollout) make_rollout ;;
  all) make_project & p=$!; make_rollout & r=$!; wait $p; wait $r ;;
  *) echo "usage: $0 [project|rollout|all]" >&2; exit 2 ;;
esac
