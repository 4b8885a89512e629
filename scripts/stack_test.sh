#!/usr/bin/env bash
# dev.sh's AWS workflow against a local moto server: build, create, upload, package, delete,
# checking what the stack creates and what each command prints.
#
# moto runs no Lambda code, so while the stack is being created this test plays Lambda's part
# for the custom resource: it runs the real kms-encryption binary on the request moto is
# waiting for, and the binary answers moto at the ResponseURL, as it answers CloudFormation.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="$ROOT/.venv/bin:$PATH"

work="$(mktemp -d -t activity-aware-stack-test.XXXXXX)"
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

passed=0
pass() {
    passed=$((passed + 1))
    echo "ok - $*"
}
fail() {
    echo "FAIL - $*" >&2
    echo "stack test: $passed passed, 1 failed" >&2
    exit 1
}
expect_equal() {
    local what="$1" expected="$2" actual="$3"
    [[ "$actual" == "$expected" ]] || fail "$what: expected '$expected', got '$actual'"
    pass "$what"
}

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
moto_server -H 127.0.0.1 -p "$port" >"$work/moto.log" 2>&1 &
pids+=("$!")
export AWS_ENDPOINT_URL="http://127.0.0.1:$port"
export AWS_ACCESS_KEY_ID=stack-test AWS_SECRET_ACCESS_KEY=stack-test AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true
export STACK_NAME=Activity-Aware-IDS-StackTest BUILD_ARTIFACT_BUCKET=activity-aware-ids-stack-test
export ARCH="${ARCH:-arm64}"
aws_local() { aws --endpoint-url "$AWS_ENDPOINT_URL" "$@"; }
for _ in $(seq 100); do
    aws_local sns list-topics >/dev/null 2>&1 && break
    sleep 0.1
done
webhook="https://hooks.slack.com/services/T0STACK/B0STACK/stack-test-secret-$RANDOM$RANDOM"

# --- usage errors ---
expect_exit() {
    local what="$1" expected="$2"
    shift 2
    local code=0
    "$@" >"$work/usage.out" 2>&1 || code=$?
    [[ $code -eq $expected ]] || fail "$what: exit $code, expected $expected ($(cat "$work/usage.out"))"
    pass "$what (exit $expected)"
}
expect_exit "an unknown command is refused" 2 ./dev.sh frobnicate
expect_exit "create refuses a webhook that is not https" 2 ./dev.sh create "http://hooks.slack.com/services/x"
expect_exit "create without a webhook is refused" 2 ./dev.sh create
expect_exit "invoke of an unknown function is refused" 2 ./dev.sh invoke no-such-function events/destination-slack.json
expect_exit "invoke with a missing event file is refused" 3 ./dev.sh invoke destination-slack "$work/missing.json"
expect_exit "build of an unknown function is refused" 2 ./dev.sh build no-such-function

# --- build ---
# moto runs none of this code, so the zips need not be the tuned release build; a quicker
# profile (no LTO) keeps this test short. ./dev.sh bench measures the real zips' sizes.
CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 ./dev.sh build >"$work/build.log" 2>&1 ||
    { cat "$work/build.log" >&2; fail "dev.sh build"; }
for fn in source-cloudtrail-cloudwatch-logs destination-slack kms-encryption; do
    zip="dist/$fn/$fn.zip"
    [[ -f "$zip" ]] || fail "dev.sh build made no $zip"
    [[ "$(unzip -Z1 "$zip")" == *bootstrap* ]] || fail "$zip holds no bootstrap"
    pass "dev.sh build made $zip with a bootstrap"
done

# --- create, answering the custom resource with the real kms-encryption binary ---
cargo build --quiet -p kms-encryption -p test-world
./dev.sh create "$webhook" >"$work/create.log" 2>&1 &
create_pid=$!
pids+=("$create_pid")

key_arn=""
for _ in $(seq 300); do
    # (moto cannot DescribeKey a key whose policy came from a template, so go by the alias list)
    key_arn="$(aws_local kms list-aliases --query "Aliases[?AliasName=='alias/$STACK_NAME-Key'].TargetKeyId" --output text 2>/dev/null || true)"
    [[ -n "$key_arn" && "$key_arn" != "None" ]] && break
    kill -0 "$create_pid" 2>/dev/null || { cat "$work/create.log" >&2; fail "dev.sh create stopped before the stack was created"; }
    sleep 0.2
done
[[ -n "$key_arn" ]] || fail "the stack key never appeared"
stack_id="$(aws_local cloudformation describe-stacks --stack-name "$STACK_NAME" --query "Stacks[0].StackId" --output text)"
python3 - "$AWS_ENDPOINT_URL" "$stack_id" "$key_arn" "$webhook" >"$work/custom-resource.json" <<'PY'
import json, sys, urllib.parse
endpoint, stack_id, key_arn, webhook = sys.argv[1:]
print(json.dumps({
    "RequestType": "Create",
    "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:KmsEncryption",
    "ResponseURL": f"{endpoint}/cloudformation_us-east-1/cfnresponse?stack={urllib.parse.quote(stack_id, safe='')}",
    "StackId": stack_id,
    "RequestId": "stack-test-request",
    "LogicalResourceId": "EncryptedSlackWebhookURL",
    "ResourceType": "Custom::KmsEncryption",
    "ResourceProperties": {"ServiceToken": "kms-encryption", "KeyId": key_arn, "PlainText": webhook},
}))
PY
target/debug/test-world invoke --binary target/debug/kms-encryption --event "$work/custom-resource.json" \
    --env "AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL" --env AWS_ACCESS_KEY_ID=stack-test --env AWS_SECRET_ACCESS_KEY=stack-test \
    --env AWS_REGION=us-east-1 --env AWS_EC2_METADATA_DISABLED=true >"$work/custom-resource.out" 2>&1 ||
    { cat "$work/custom-resource.out" >&2; fail "kms-encryption did not answer the custom resource"; }
grep -q '"Status": "SUCCESS"' "$work/custom-resource.out" || fail "kms-encryption answered: $(cat "$work/custom-resource.out")"
pass "kms-encryption answered the stack's custom resource with SUCCESS"
wait "$create_pid" || { cat "$work/create.log" >&2; fail "dev.sh create failed"; }
pass "dev.sh create finished"

expect_equal "stack status" CREATE_COMPLETE \
    "$(aws_local cloudformation describe-stacks --stack-name "$STACK_NAME" --query "Stacks[0].StackStatus" --output text)"
resources=" $(aws_local cloudformation describe-stack-resources --stack-name "$STACK_NAME" \
    --query "StackResources[].LogicalResourceId" --output text | tr '\t' ' ') "
# What the template declares, split into what moto creates and what it only pretends to
# (subscriptions, invoke configs, subscription filters: checked in the template instead).
python3 - infrastructure/cloudformation.yaml >"$work/expected.txt" <<'PY'
import sys, yaml
class Loader(yaml.SafeLoader):
    pass
Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
template = yaml.load(open(sys.argv[1]), Loader=Loader)
faked = {"AWS::SNS::Subscription", "AWS::Lambda::EventInvokeConfig", "AWS::Logs::SubscriptionFilter"}
for logical, resource in template["Resources"].items():
    if resource.get("Condition") == "CloudTrailConfigured":
        kind = "absent"  # create passes an empty log group, like the original
    elif resource["Type"] in faked:
        kind = "faked"
    else:
        kind = "created"
    print(kind, logical, resource["Type"])
PY
while read -r kind logical type; do
    case "$kind" in
        created) [[ "$resources" == *" $logical "* ]] || fail "the stack has no $logical ($type); it has:$resources" ;;
        absent) [[ "$resources" != *" $logical "* ]] || fail "$logical exists though no CloudTrail log group was given" ;;
    esac
done <"$work/expected.txt"
pass "the stack has every resource moto creates ($(grep -c ^created "$work/expected.txt")), none of the CloudTrail ones"
grep -q "^faked DestinationSlackSNSSubscription AWS::SNS::Subscription" "$work/expected.txt" ||
    fail "the template subscribes no destination to the topic"
grep -q "^faked DestinationSlackInvokeConfig AWS::Lambda::EventInvokeConfig" "$work/expected.txt" ||
    fail "the template gives the destination no on-failure configuration"
pass "the template subscribes the destination and keeps its failures (resources moto only pretends to create)"

topic="$(aws_local cloudformation describe-stacks --stack-name "$STACK_NAME" \
    --query "Stacks[0].Outputs[?OutputKey=='SNSTopicArn'].OutputValue" --output text)"
aws_local sns get-topic-attributes --topic-arn "$topic" >/dev/null || fail "output SNSTopicArn '$topic' is not a topic"
pass "output SNSTopicArn is the stack's topic"
expect_equal "the SNSTopicArn export" "$topic" \
    "$(aws_local cloudformation list-exports --query "Exports[?Name=='$STACK_NAME-SNSTopic'].Value" --output text)"

aws_local cloudformation describe-stack-resources --stack-name "$STACK_NAME" \
    --query "StackResources[].[LogicalResourceId, PhysicalResourceId]" --output text >"$work/physical-ids.txt"
physical_id() {
    awk -v logical="$1" '$1 == logical { print $2 }' "$work/physical-ids.txt"
}
for fn in SourceCloudtrailCloudwatchLogs DestinationSlack KmsEncryption; do
    config="$(aws_local lambda get-function-configuration --function-name "$(physical_id "${fn}Lambda")" \
        --query "[Runtime, Handler]" --output text)"
    expect_equal "$fn runtime and handler" "provided.al2023	bootstrap" "$config"
done
expect_equal "the source publishes to the stack's topic" "$topic" \
    "$(aws_local lambda get-function-configuration --function-name "$(physical_id SourceCloudtrailCloudwatchLogsLambda)" \
        --query "Environment.Variables.SNS_TOPIC" --output text)"
ciphertext="$(aws_local lambda get-function-configuration --function-name "$(physical_id DestinationSlackLambda)" \
    --query "Environment.Variables.SLACK_WEBHOOK_URL" --output text)"
[[ "$ciphertext" != *hooks.slack.com* ]] || fail "the destination's SLACK_WEBHOOK_URL is not encrypted"
if [[ "$ciphertext" == "None" ]]; then
    # moto resolves !GetAtt EncryptedSlackWebhookURL.CipherText when it creates the function,
    # before the custom resource has answered; crates/kms-encryption/tests check the CipherText.
    pass "the destination's SLACK_WEBHOOK_URL is not the plain webhook (moto leaves the CipherText unresolved)"
else
    printf '%s' "$ciphertext" | base64 -d >"$work/ciphertext.bin" 2>/dev/null ||
        fail "the destination's SLACK_WEBHOOK_URL is not base64"
    decrypted="$(aws_local kms decrypt --ciphertext-blob "fileb://$work/ciphertext.bin" --query Plaintext --output text | base64 -d)" ||
        fail "KMS cannot decrypt the destination's SLACK_WEBHOOK_URL"
    [[ "$decrypted" == "$webhook" ]] || fail "the destination's SLACK_WEBHOOK_URL does not decrypt to the webhook"
    pass "the destination's SLACK_WEBHOOK_URL is the webhook encrypted with the stack key"
fi
for fn in SourceCloudtrailCloudwatchLogs DestinationSlack KmsEncryption; do
    expect_equal "log group of $fn keeps 90 days" 90 \
        "$(aws_local logs describe-log-groups --log-group-name-prefix "$(physical_id "${fn}LogGroup")" \
            --query "logGroups[0].retentionInDays" --output text)"
done
queue_url="$(aws_local cloudformation describe-stacks --stack-name "$STACK_NAME" \
    --query "Stacks[0].Outputs[?OutputKey=='FailedInvocationsQueueUrl' || OutputKey=='DestinationSlackFailureQueueUrl'].OutputValue | [0]" \
    --output text)"
aws_local sqs get-queue-attributes --queue-url "$queue_url" --attribute-names QueueArn >/dev/null ||
    fail "the failure queue '$queue_url' does not exist"
pass "the failure queue exists"

# --- upload ---
./dev.sh upload destination-slack >"$work/upload.log" 2>&1 || { cat "$work/upload.log" >&2; fail "dev.sh upload"; }
grep -q "\"FunctionName\": \"$(physical_id DestinationSlackLambda)\"" "$work/upload.log" ||
    fail "dev.sh upload did not update the function: $(cat "$work/upload.log")"
pass "dev.sh upload updated the destination's code"

# --- package ---
./dev.sh package >"$work/package.log" 2>&1 || { cat "$work/package.log" >&2; fail "dev.sh package"; }
url="$(grep -o "$AWS_ENDPOINT_URL/$BUILD_ARTIFACT_BUCKET/cloudformation/[0-9-]*\.yaml" "$work/package.log" | head -n 1)"
[[ -n "$url" ]] || fail "dev.sh package printed no template URL: $(cat "$work/package.log")"
grep -q "quickcreate?stackName=Activity-Aware-IDS&templateURL=$url" "$work/package.log" ||
    fail "dev.sh package printed no quick-create link"
key="${url#"$AWS_ENDPOINT_URL/$BUILD_ARTIFACT_BUCKET/"}"
aws_local s3 cp "s3://$BUILD_ARTIFACT_BUCKET/$key" "$work/packaged.yaml" >/dev/null || fail "the packaged template is not in the bucket"
grep -q "S3Bucket: $BUILD_ARTIFACT_BUCKET" "$work/packaged.yaml" || fail "the packaged template does not point at uploaded code"
cfn-lint -- "$work/packaged.yaml" || fail "cfn-lint reports on the packaged template"
pass "dev.sh package uploaded a lint-clean template and printed its URL and quick-create link"

# --- the webhook never shows ---
for log in create upload package; do
    ! grep -q "stack-test-secret" "$work/$log.log" || fail "the webhook URL appears in dev.sh $log's output"
done
pass "the webhook URL appears in no command's output"

# --- delete ---
./dev.sh delete >"$work/delete.log" 2>&1 || { cat "$work/delete.log" >&2; fail "dev.sh delete"; }
remaining="$(aws_local cloudformation list-stacks --query "StackSummaries[?StackName=='$STACK_NAME' && StackStatus!='DELETE_COMPLETE'].StackStatus" --output text)"
expect_equal "no stack left after dev.sh delete" "" "$remaining"

echo "stack test: $passed passed, 0 failed"
