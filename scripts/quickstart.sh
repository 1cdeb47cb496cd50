#!/usr/bin/env bash
# Quick start: install kubeops, start the sandbox cluster, decommission a node, and show what happened.
# Safe to run again: it restarts the sandbox from its scenario.
set -euo pipefail
cd "$(dirname "$0")/.."

NODE="${NODE:-worker-2}"

echo "== installing kubeops into .venv"
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[sandbox,console]'
# shellcheck disable=SC1091
. .venv/bin/activate

echo "== starting the sandbox (Kubernetes API emulator + moto AWS)"
invoke sandbox --stop >/dev/null 2>&1 || true
invoke sandbox --scenario=default --detach
state="${KUBEOPS_STATE_DIR:-$HOME/.local/state/kubeops}/sandbox"
export KUBECONFIG="$state/kubeconfig"

echo "== before"
kubectl get nodes
kubectl get pods -A -o wide --field-selector "spec.nodeName=$NODE"

echo "== invoke decommission --node=$NODE"
invoke decommission --node="$NODE"

echo "== after"
kubectl get nodes
kubectl get pods -A -o wide
invoke runs

cat <<MSG

The sandbox is still running, so you can look around:
  export KUBECONFIG=$state/kubeconfig; kubectl get pods -A -o wide
  . .venv/bin/activate; invoke --list; invoke runs; invoke show --run=ID
Stop it with: .venv/bin/invoke sandbox --stop
MSG
