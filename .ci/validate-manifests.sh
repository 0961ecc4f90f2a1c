#!/usr/bin/env bash
# Validates the deployment files: every Kubernetes manifest under deploy/kubernetes against the
# Kubernetes 1.35 schemas (unknown fields rejected) and for the enum values those schemas leave
# unchecked, and that deploy/docker-compose.yml parses as YAML. .ci/tools.sh installs the
# validator.
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

if [ "${failed}" -eq 0 ]; then
  echo "deploy files valid (${passed} files)"
else
  echo "deploy files invalid: ${failed} of $((passed + failed)) files failed" >&2
  exit 1
fi
