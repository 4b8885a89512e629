#!/usr/bin/env bash
# The whole pipeline on this machine, no AWS account needed (run it as ./dev.sh local [event]):
# moto stands in for SNS, SQS and KMS; the real function binaries run through a local Lambda
# Runtime API (test-world invoke); Slack is a local HTTPS stand-in with a throwaway CA, unless
# SLACK_WEBHOOK_URL is set, in which case the message goes to that webhook.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
event="${1:-events/source-cloudtrail-cloudwatch-logs.json}"
[[ -f "$event" ]] || { echo "error: $event does not exist" >&2; exit 3; }

work="$(mktemp -d -t activity-aware-local.XXXXXX)"
pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step() { printf '\n== %s\n' "$*"; }

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

wait_for() {
    local what="$1" tries=100
    shift
    until "$@" >/dev/null 2>&1; do
        tries=$((tries - 1))
        if [[ $tries -le 0 ]]; then
            echo "error: $what did not come up" >&2
            exit 1
        fi
        sleep 0.1
    done
}

step "Building the functions and the local world"
cargo build --quiet -p source-cloudtrail-cloudwatch-logs -p destination-slack -p test-world
bin="$ROOT/target/debug"

step "Starting moto (SNS, SQS, KMS) on 127.0.0.1"
port="$(free_port)"
moto_server -H 127.0.0.1 -p "$port" >"$work/moto.log" 2>&1 &
pids+=("$!")
export AWS_ENDPOINT_URL="http://127.0.0.1:$port"
export AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local AWS_SESSION_TOKEN=local
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
aws_local() { aws --endpoint-url "$AWS_ENDPOINT_URL" "$@"; }
wait_for "moto" aws_local sns list-topics

topic="$(aws_local sns create-topic --name Activity-Aware-IDS-Local --query TopicArn --output text)"
queue_url="$(aws_local sqs create-queue --queue-name activity-aware-local-capture --query QueueUrl --output text)"
queue_arn="$(aws_local sqs get-queue-attributes --queue-url "$queue_url" --attribute-names QueueArn --query Attributes.QueueArn --output text)"
aws_local sns subscribe --topic-arn "$topic" --protocol sqs --notification-endpoint "$queue_arn" \
    --attributes RawMessageDelivery=true >/dev/null
key="$(aws_local kms create-key --description "Activity Aware IDS local" --query KeyMetadata.KeyId --output text)"
echo "topic $topic"

slack_env=()
if [[ -n "${SLACK_WEBHOOK_URL:-}" ]]; then
    step "Using your SLACK_WEBHOOK_URL"
    printf '%s' "$SLACK_WEBHOOK_URL" >"$work/webhook"
else
    step "Starting the HTTPS Slack stand-in (throwaway CA)"
    "$bin/test-world" slack-sink --ca-file "$work/ca.pem" --url-file "$work/webhook" --log-file "$work/slack.log" \
        >"$work/slack.out" 2>&1 &
    pids+=("$!")
    wait_for "the Slack stand-in" test -s "$work/webhook"
    slack_env=(--env "SSL_CERT_FILE=$work/ca.pem")
fi
ciphertext="$(aws_local kms encrypt --key-id "$key" --plaintext "fileb://$work/webhook" --query CiphertextBlob --output text)"
rm -f "$work/webhook"

aws_env=()
for name in AWS_ENDPOINT_URL AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_REGION AWS_DEFAULT_REGION AWS_EC2_METADATA_DISABLED; do
    aws_env+=(--env "$name=${!name}")
done

step "Invoking source-cloudtrail-cloudwatch-logs with $event"
"$bin/test-world" invoke --binary "$bin/source-cloudtrail-cloudwatch-logs" --event "$event" \
    "${aws_env[@]}" --env "SNS_TOPIC=$topic"
echo

step "Relaying what the topic received to destination-slack as SNS events"
: >"$work/messages.jsonl"
while true; do
    received="$(aws_local sqs receive-message --queue-url "$queue_url" --max-number-of-messages 10 \
        --wait-time-seconds 1 --output json)"
    [[ -n "$received" ]] || break
    count="$(python3 -c 'import json,sys; print(len(json.load(sys.stdin).get("Messages", [])))' <<<"$received")"
    [[ "$count" -gt 0 ]] || break
    python3 -c 'import json,sys
for m in json.load(sys.stdin)["Messages"]: print(json.dumps(m["Body"]))' <<<"$received" >>"$work/messages.jsonl"
    python3 -c 'import json,sys
for m in json.load(sys.stdin)["Messages"]: print(m["ReceiptHandle"])' <<<"$received" |
        while read -r handle; do aws_local sqs delete-message --queue-url "$queue_url" --receipt-handle "$handle"; done
done
total="$(wc -l <"$work/messages.jsonl")"
echo "the topic received $total Message(s)"

number=0
while read -r body_json; do
    number=$((number + 1))
    python3 - "$topic" "$number" "$body_json" >"$work/sns-event.json" <<'PY'
import json, sys
topic, number, body = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
print(json.dumps({"Records": [{
    "EventVersion": "1.0", "EventSource": "aws:sns",
    "EventSubscriptionArn": f"{topic}:local-subscription",
    "Sns": {"Type": "Notification", "MessageId": f"local-message-{number}", "TopicArn": topic,
            "Subject": None, "Message": body, "Timestamp": "1970-01-01T00:00:00.000Z",
            "SignatureVersion": "1", "Signature": "", "SigningCertUrl": "", "UnsubscribeUrl": "",
            "MessageAttributes": {}}}]}))
PY
    step "Invoking destination-slack with Message $number of $total"
    "$bin/test-world" invoke --binary "$bin/destination-slack" --event "$work/sns-event.json" \
        "${aws_env[@]}" --env "SLACK_WEBHOOK_URL=$ciphertext" "${slack_env[@]}"
    echo
done <"$work/messages.jsonl"

if [[ -z "${SLACK_WEBHOOK_URL:-}" ]]; then
    step "What Slack received"
    if [[ -s "$work/slack.log" ]]; then
        cat "$work/slack.log"
    else
        echo "(nothing)"
    fi
fi
