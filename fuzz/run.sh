#!/usr/bin/env bash
# Fuzzes the payload decoder, the record mapping and the Message parser with libFuzzer.
#   fuzz/run.sh [seconds per target]      (default 60; FUZZ_TARGETS to pick targets)
# Seeds come from the CloudTrail fixtures; crashes land in fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

seconds="${1:-${FUZZ_SECONDS:-60}}"
targets="${FUZZ_TARGETS:-logs_payload awslogs_data message}"
fixtures="../fixtures/cloudtrail"

if ! command -v cargo-fuzz >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
# cargo fuzz passes nightly-only flags (sanitizers); the stable toolchain accepts them with this.
export RUSTC_BOOTSTRAP=1

python3 - "$fixtures" <<'PY'
import json, os, sys
fixtures = sys.argv[1]
records = [l for f in ("records.jsonl", "edge-cases.jsonl")
           for l in open(os.path.join(fixtures, f), encoding="utf-8").read().splitlines() if l]
small = [r for r in records if len(r) < 8000]
for target in ("logs_payload", "awslogs_data", "message"):
    os.makedirs(os.path.join("corpus", target), exist_ok=True)
def write(target, name, data):
    with open(os.path.join("corpus", target, name), "wb") as f:
        f.write(data)
for i in range(0, len(small), 97):
    batch = small[i:i + 3]
    payload = {"messageType": "DATA_MESSAGE", "owner": "111122223333", "logGroup": "CloudTrail/DefaultLogGroup",
               "logStream": "s", "subscriptionFilters": ["f"],
               "logEvents": [{"id": str(n), "timestamp": n, "message": r} for n, r in enumerate(batch)]}
    write("logs_payload", f"payload-{i}", json.dumps(payload).encode())
    write("logs_payload", f"record-{i}", batch[0].encode())
    write("awslogs_data", f"payload-{i}", b"\x01" + json.dumps(payload).encode())
    record = json.loads(batch[0])
    fields = [{"key": k, "value": record[k]} for k in ("errorMessage", "eventName", "requestParameters") if record.get(k)]
    message = {"subject": "s <!channel> & more", "fields": fields, "metadata": {"sourceName": "Cloudtrail"},
               "tags": [{"key": "slack-preferred-channel", "value": "#x"}]}
    write("message", f"message-{i}", json.dumps(message, ensure_ascii=False).encode())
PY

for target in $targets; do
    echo "== fuzzing $target for ${seconds}s"
    cargo fuzz run "$target" "corpus/$target" -- -max_total_time="$seconds" -max_len=65536 -print_final_stats=1
done
