#!/usr/bin/env bash
# Validates the deployment files: every Kubernetes manifest under deploy/kubernetes against the
# Kubernetes 1.35 schemas (unknown fields rejected) and for the enum values those schemas leave
# unchecked, that deploy/docker-compose.yml parses as YAML, and deploy/monitoring by structure (a
# PrometheusRule is a custom resource the Kubernetes schemas do not know; the Grafana dashboard is
# JSON). .ci/tools.sh installs the validator.
set -euo pipefail
cd "$(dirname "$0")/.."

venv="${FLINKBROKER_CI_VENV:-${HOME}/.cache/flinkbroker/ci-venv}"
validator="${venv}/bin/kubernetes-validate"
python="${venv}/bin/python"
kubernetes_version=1.35.0

if [ ! -x "${validator}" ]; then
  echo "kubernetes-validate not found at ${validator}: run .ci/tools.sh first" >&2
  exit 1
fi

mapfile -t manifests < <(find deploy/kubernetes -type f \( -name '*.yaml' -o -name '*.yml' \) | LC_ALL=C sort)
if [ "${#manifests[@]}" -eq 0 ]; then
  echo "no manifests found under deploy/kubernetes" >&2
  exit 1
fi

have_yaml=false
if [ -x "${python}" ] && "${python}" -c 'import yaml' 2>/dev/null; then
  have_yaml=true
else
  echo "note: no PyYAML in ${venv}; enum values and deploy/docker-compose.yml are not checked"
fi

# The schemas type these fields as plain strings, so kubernetes-validate passes a misspelt value.
check_enum_values() {
  "${python}" - "$1" <<'PYTHON'
import sys

import yaml

ALLOWED_BY_KEY = {
    "imagePullPolicy": {"Always", "IfNotPresent", "Never"},
    "protocol": {"TCP", "UDP", "SCTP"},
    "restartPolicy": {"Always", "OnFailure", "Never"},
    "dnsPolicy": {"ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"},
}
ALLOWED_BY_PARENT_AND_KEY = {
    ("strategy", "type"): {"Recreate", "RollingUpdate"},
    ("seccompProfile", "type"): {"RuntimeDefault", "Localhost", "Unconfined"},
}
SERVICE_TYPES = {"ClusterIP", "NodePort", "LoadBalancer", "ExternalName"}


def problems_in(node, path, parent_key):
    if isinstance(node, dict):
        for key, value in node.items():
            allowed = ALLOWED_BY_PARENT_AND_KEY.get((parent_key, key)) or ALLOWED_BY_KEY.get(key)
            if allowed is not None and isinstance(value, str) and value not in allowed:
                yield f"{path}.{key}: {value!r} is not one of {sorted(allowed)}"
            yield from problems_in(value, f"{path}.{key}", key)
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from problems_in(item, f"{path}[{index}]", parent_key)


with open(sys.argv[1], encoding="utf-8") as file:
    documents = [document for document in yaml.safe_load_all(file) if isinstance(document, dict)]
problems = []
for document in documents:
    name = f"{document.get('kind')}/{(document.get('metadata') or {}).get('name')}"
    problems.extend(f"{name} {problem}" for problem in problems_in(document, "", None))
    if document.get("kind") == "Service":
        service_type = (document.get("spec") or {}).get("type", "ClusterIP")
        if service_type not in SERVICE_TYPES:
            problems.append(f"{name} .spec.type: {service_type!r} is not one of {sorted(SERVICE_TYPES)}")
for problem in problems:
    print(problem)
sys.exit(1 if problems else 0)
PYTHON
}

passed=0
failed=0
for manifest in "${manifests[@]}"; do
  if ! output=$("${validator}" --strict --quiet -k "${kubernetes_version}" "${manifest}" 2>&1); then
    :
  elif [ "${have_yaml}" = true ] && ! output=$(check_enum_values "${manifest}" 2>&1); then
    :
  else
    echo "ok    ${manifest}"
    passed=$((passed + 1))
    continue
  fi
  echo "FAIL  ${manifest}"
  printf '%s\n' "${output}" | sed 's/^/      /'
  failed=$((failed + 1))
done

if [ "${have_yaml}" = true ]; then
  if output=$("${python}" -c '
import sys, yaml
try:
    yaml.safe_load(open(sys.argv[1], encoding="utf-8"))
except yaml.YAMLError as error:
    sys.exit(str(error))
' deploy/docker-compose.yml 2>&1); then
    echo "ok    deploy/docker-compose.yml (YAML only)"
    passed=$((passed + 1))
  else
    echo "FAIL  deploy/docker-compose.yml"
    printf '%s\n' "${output}" | sed 's/^/      /'
    failed=$((failed + 1))
  fi
else
  echo "skip  deploy/docker-compose.yml (no PyYAML)"
fi

# deploy/monitoring: every alert of the PrometheusRule has an expr, a for, a severity, a summary
# and a description; the dashboard is JSON whose panels all query something. tests/it/metrics.rs
# checks that the queries name only metrics the broker exports.
if [ "${have_yaml}" = true ]; then
  if output=$("${python}" - deploy/monitoring/prometheus-rules.yaml deploy/monitoring/grafana-dashboard.json <<'PYTHON' 2>&1
import json
import sys

import yaml

problems = []
with open(sys.argv[1], encoding="utf-8") as file:
    rule = yaml.safe_load(file)
if rule.get("apiVersion") != "monitoring.coreos.com/v1" or rule.get("kind") != "PrometheusRule":
    problems.append("not a monitoring.coreos.com/v1 PrometheusRule")
if not (rule.get("metadata") or {}).get("name"):
    problems.append("metadata.name missing")
groups = (rule.get("spec") or {}).get("groups") or []
if not groups:
    problems.append("spec.groups is empty")
alerts = 0
for group in groups:
    if not group.get("name"):
        problems.append("a group without a name")
    for item in group.get("rules") or []:
        name = item.get("alert") or item.get("record") or "?"
        unknown = set(item) - {"alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations"}
        if unknown:
            problems.append(f"{name}: unknown fields {sorted(unknown)}")
        if not isinstance(item.get("expr"), str) or not item["expr"].strip():
            problems.append(f"{name}: no expr")
        if "alert" in item:
            alerts += 1
            if not isinstance(item.get("for"), str):
                problems.append(f"{name}: no for")
            if (item.get("labels") or {}).get("severity") not in {"critical", "warning", "info"}:
                problems.append(f"{name}: severity must be critical, warning or info")
            annotations = item.get("annotations") or {}
            for key in ("summary", "description"):
                if not annotations.get(key):
                    problems.append(f"{name}: no {key} annotation")
if alerts == 0:
    problems.append("no alerts")
with open(sys.argv[2], encoding="utf-8") as file:
    dashboard = json.load(file)
panels = dashboard.get("panels") or []
if not dashboard.get("title") or not panels:
    problems.append("the dashboard has no title or no panels")
for panel in panels:
    if not [t for t in panel.get("targets") or [] if t.get("expr")]:
        problems.append(f"panel {panel.get('title')!r} queries nothing")
for problem in problems:
    print(problem)
sys.exit(1 if problems else 0)
PYTHON
  ); then
    echo "ok    deploy/monitoring (PrometheusRule and dashboard, by structure)"
    passed=$((passed + 1))
  else
    echo "FAIL  deploy/monitoring"
    printf '%s\n' "${output}" | sed 's/^/      /'
    failed=$((failed + 1))
  fi
else
  echo "skip  deploy/monitoring (no PyYAML)"
fi

if [ "${failed}" -eq 0 ]; then
  echo "deploy files valid (${passed} files)"
else
  echo "deploy files invalid: ${failed} of $((passed + failed)) files failed" >&2
  exit 1
fi
