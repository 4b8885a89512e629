#!/usr/bin/env bash
# dev.sh's AWS workflow against a fresh local moto server, with the real functions running:
# usage errors, then build, create, invoke, redrive, upload, package and delete, checking what
# the stack creates, what each command prints, and that the webhook URL shows nowhere.
#
# moto keeps the stack but runs no Lambda code, so test-world plays Lambda's parts:
# - while the stack is created it runs the real kms-encryption binary on the custom resource
#   request moto waits for, and keeps a copy of the answer on its way to moto;
# - `test-world lambda-service` serves Lambda's Invoke API in front of moto (every other Lambda
#   call goes on to moto): `./dev.sh invoke` and `./dev.sh redrive` run the stack's functions
#   as their binaries, with the environment moto holds for them; asynchronous invocations are
#   tried three times and then recorded in the function's on-failure queue, as Lambda does.
# What moto does not do, and how it is covered instead:
# - it resolves !GetAtt EncryptedSlackWebhookURL.CipherText before the custom resource answers,
#   so the Slack function's SLACK_WEBHOOK_URL holds "None": the test sets it to the answer's
#   CipherText, and tests/template_test.py checks the wiring;
# - it fakes AWS::SNS::Subscription, AWS::Lambda::EventInvokeConfig, AWS::Logs::SubscriptionFilter
#   and AWS::Lambda::EventSourceMapping (nothing created) and ignores Architectures: the template
#   test checks those in the template, the test subscribes its own queue to the topic, the
#   functions' integration tests play the event source mapping, and the zips' machine code is
#   checked here;
# - DescribeKey fails (500) on a key it made from a template's KeyPolicy, so the key is found
#   through its alias; it shows NoEcho parameters in DescribeStacks, so that is not checked.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="$ROOT/.venv/bin:$PATH"
for tool in aws cfn-lint cargo; do
    command -v "$tool" >/dev/null 2>&1 || { echo "stack test: $tool is missing (run it through ./dev.sh test)" >&2; exit 1; }
done

# moto runs none of the zips' code (the Lambda service runs the debug binaries), so the zips
# hold the debug binaries the tests built, for this machine's architecture: nothing is built
# twice. The release (./dev.sh release) builds and checks the real zips for both architectures.
case "$(uname -m)" in
    aarch64) ARCH=arm64 ;;
    *) ARCH=x86_64 ;;
esac
export ARCH
export PREBUILT_BINARIES="$ROOT/target/debug"

work="$(mktemp -d -t activity-aware-stack-test.XXXXXX)"
pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        kill -- "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "${pid#-}" 2>/dev/null || true
    done
    if [[ -n "${KEEP_WORK:-}" ]]; then
        echo "stack test: logs kept in $work" >&2
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

passed=0
pass() {
    passed=$((passed + 1))
    echo "ok - $* [${SECONDS} s]"
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
# destination-slack -> DestinationSlack, as dev.sh names logical IDs.
camel() {
    local part out=""
    local IFS=-
    for part in $1; do out+="${part^}"; done
    echo "$out"
}
# Waits (bounded) until a command succeeds.
wait_until() {
    local what="$1" tries="$2"
    shift 2
    until "$@" >/dev/null 2>&1; do
        tries=$((tries - 1))
        [[ $tries -gt 0 ]] || fail "$what"
        sleep 0.2
    done
}

# --- the local world: moto, the Slack stand-in, and the functions' debug binaries ---
mapfile -t functions < <(./dev.sh functions)
# One build of them all, as ./dev.sh local builds them: its features are those of the test
# build, so it reuses every dependency the Rust tests built.
package_args=(-p test-world)
for fn in "${functions[@]}"; do package_args+=(-p "$fn"); done
cargo build --quiet "${package_args[@]}"
world="$ROOT/target/debug/test-world"
bin="$ROOT/target/debug"

"$world" moto --endpoint-file "$work/moto.url" >"$work/moto.log" 2>&1 &
pids+=("$!")
"$world" slack-sink --ca-file "$work/ca.pem" --url-file "$work/webhook.url" --log-file "$work/slack.log" >/dev/null 2>&1 &
pids+=("$!")
wait_until "moto did not start: $(cat "$work/moto.log" 2>/dev/null)" 600 test -s "$work/moto.url"
wait_until "the Slack stand-in did not start" 100 test -s "$work/webhook.url"
webhook="$(cat "$work/webhook.url")"
secret="${webhook##*/}"

# Nothing here could reach a real AWS account.
unset AWS_PROFILE AWS_SESSION_TOKEN
AWS_ENDPOINT_URL="$(cat "$work/moto.url")"
export AWS_ENDPOINT_URL
export AWS_ACCESS_KEY_ID=stack-test AWS_SECRET_ACCESS_KEY=stack-test AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
export STACK_NAME=Activity-Aware-IDS-StackTest BUILD_ARTIFACT_BUCKET=activity-aware-ids-stack-test
unset SLACK_WEBHOOK_URL SLACK_WEBHOOK_ROUTES TEAMS_WEBHOOK_URL PAGERDUTY_ROUTING_KEY EMAIL_FROM EMAIL_TO \
    TEAMS_MINIMUM_SEVERITY PAGERDUTY_MINIMUM_SEVERITY EMAIL_MINIMUM_SEVERITY
aws_local() { aws --endpoint-url "$AWS_ENDPOINT_URL" "$@"; }

# Every rule of a bus and its first target's ARN, a line each, from one process of the SDK the
# aws CLI runs on (a CLI call a rule takes a second each, for some hundred rules).
rule_targets() {
    "$(dirname "$(command -v aws)")/python" - "$AWS_ENDPOINT_URL" "$1" <<'PY'
import sys
import boto3
endpoint, bus = sys.argv[1], sys.argv[2]
events = boto3.client("events", endpoint_url=endpoint)
for page in events.get_paginator("list_rules").paginate(EventBusName=bus):
    for rule in page["Rules"]:
        targets = events.list_targets_by_rule(Rule=rule["Name"], EventBusName=bus)["Targets"]
        print(rule["Name"], targets[0]["Arn"] if targets else "None")
PY
}

# --- usage errors: each kind has its own exit code, and a message ---
expect_exit() {
    local what="$1" expected="$2" message="$3"
    shift 3
    local code=0
    "$@" >"$work/usage.out" 2>&1 </dev/null || code=$?
    [[ $code -eq $expected ]] || fail "$what: exit $code, expected $expected ($(cat "$work/usage.out"))"
    grep -q "error: .*$message" "$work/usage.out" || fail "$what: no 'error: ...$message' in: $(cat "$work/usage.out")"
    pass "$what (exit $expected)"
}
mkdir -p "$work/dist"
expect_exit "an unknown command is refused" 2 "unknown command 'frobnicate'" ./dev.sh frobnicate
expect_exit "invoke with one argument is refused" 3 "usage: .* invoke <function> <json file>" ./dev.sh invoke destination-slack
expect_exit "local with two events is refused" 3 "usage: .* local \[--all-destinations\] \[event.json | --flood \[DENIALS\] | --respond | --org\]" ./dev.sh local a.json b.json
expect_exit "redrive without a function is refused" 3 "usage: .* redrive <function>" ./dev.sh redrive
expect_exit "invoke with a missing event file is refused" 4 "does not exist" \
    ./dev.sh invoke destination-slack "$work/missing.json"
expect_exit "local with a missing event file is refused" 4 "does not exist" ./dev.sh local "$work/missing.json"
expect_exit "local refuses a flood that is not a number" 5 "--flood takes a number of denials" ./dev.sh local --flood many
expect_exit "local refuses a SLACK_WEBHOOK_URL that is not https" 5 "SLACK_WEBHOOK_URL must start with https://" \
    env SLACK_WEBHOOK_URL=http://127.0.0.1:9/hook ./dev.sh local
expect_exit "invoke of an unknown function is refused" 5 "'no-such-function' is not a function" \
    ./dev.sh invoke no-such-function events/destination-slack.json
expect_exit "build of an unknown function is refused" 5 "'no-such-function' is not a function" ./dev.sh build no-such-function
expect_exit "an unknown ARCH is refused" 5 "ARCH must be arm64 or x86_64" env ARCH=sparc ./dev.sh build
[[ "$(./dev.sh help)" == *"redrive <function>"* ]] || fail "dev.sh help lists no commands"
pass "dev.sh help lists the commands"

# --- build ---
touch "$work/before-build"
./dev.sh build >"$work/build.log" 2>&1 || { cat "$work/build.log" >&2; fail "dev.sh build"; }
for fn in "${functions[@]}"; do
    zip="dist/$fn/$fn.zip"
    [[ "$zip" -nt "$work/before-build" ]] || fail "dev.sh build made no new $zip"
    inside="$("$world" lambda-zip "$zip")" || fail "$zip: $inside"
    [[ "$inside" == "bootstrap $ARCH mode 755 "* ]] || fail "$zip holds $inside, expected an executable $ARCH bootstrap"
    pass "dev.sh build made $zip: $inside"
done

# --- create: the webhook never on a command line; the custom resource answered by the real
# kms-encryption binary ---
expect_exit "create refuses a webhook on the command line" 3 "never the command line" ./dev.sh create "$webhook"
expect_exit "create without a webhook is refused" 3 "no webhook URL" ./dev.sh create
expect_exit "create refuses a webhook that is not https" 5 "must start with https://" \
    env SLACK_WEBHOOK_URL=http://hooks.slack.com/services/x ./dev.sh create
expect_exit "create refuses a Teams webhook that is not https" 5 "TEAMS_WEBHOOK_URL must start with https://" \
    env SLACK_WEBHOOK_URL="$webhook" TEAMS_WEBHOOK_URL=http://example.logic.azure.com/x ./dev.sh create
# In a process group of its own, so that cleanup also ends the aws waiter it runs. The webhook
# comes on standard input, as a user pipes it from a secret store.
setsid ./dev.sh create <<<"$webhook" >"$work/create.log" 2>&1 &
create_pid=$!
pids+=("-$create_pid")
# The key's alias is made before the custom resource, which waits for the answer below.
key_arn=""
for _ in $(seq 900); do
    key_arn="$(aws_local kms list-aliases --query "Aliases[?AliasName=='alias/$STACK_NAME-Key'].TargetKeyId | [0]" \
        --output text 2>/dev/null || true)"
    [[ -n "$key_arn" && "$key_arn" != None ]] && break
    kill -0 "$create_pid" 2>/dev/null || { cat "$work/create.log" >&2; fail "dev.sh create stopped before the stack key existed"; }
    sleep 0.2
done
[[ -n "$key_arn" && "$key_arn" != None ]] || fail "dev.sh create made no stack key"
[[ "$key_arn" == arn:* ]] ||
    key_arn="arn:aws:kms:us-east-1:$(aws_local sts get-caller-identity --query Account --output text):key/$key_arn"
stack_id="$(aws_local cloudformation describe-stacks --stack-name "$STACK_NAME" --query "Stacks[0].StackId" --output text)"
expect_equal "the stack waits for the custom resource" CREATE_IN_PROGRESS \
    "$(aws_local cloudformation describe-stacks --stack-name "$STACK_NAME" --query "Stacks[0].StackStatus" --output text)"
purpose="$(sed -n 's/^ *purpose: //p' infrastructure/cloudformation.yaml | head -n 1)"
cat >"$work/custom-resource.json" <<EOF
{"RequestType": "Create", "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:KmsEncryption",
 "ResponseURL": "$AWS_ENDPOINT_URL/cloudformation_us-east-1/cfnresponse?stack=${stack_id//\//%2F}",
 "StackId": "$stack_id", "RequestId": "stack-test-request", "LogicalResourceId": "EncryptedSlackWebhookURL",
 "ResourceType": "Custom::KmsEncryption",
 "ResourceProperties": {"ServiceToken": "kms-encryption", "ServiceTimeout": "300", "KeyId": "$key_arn",
                        "PlainText": "$webhook", "EncryptionContext": {"purpose": "$purpose"}}}
EOF
"$world" custom-resource --binary "$bin/kms-encryption" --request "$work/custom-resource.json" \
    --answer-file "$work/answer.json" --env "AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL" --env AWS_ACCESS_KEY_ID=stack-test \
    --env AWS_SECRET_ACCESS_KEY=stack-test --env AWS_REGION=us-east-1 --env AWS_EC2_METADATA_DISABLED=true \
    >"$work/custom-resource.out" 2>&1 || { cat "$work/custom-resource.out" >&2; fail "kms-encryption did not answer the custom resource"; }
! grep -q "$secret" "$work/custom-resource.out" || fail "kms-encryption logged the PlainText"
grep -q '"NoEcho":true' "$work/answer.json" || fail "the answer does not set NoEcho: $(cat "$work/answer.json")"
ciphertext="$(sed -n 's/.*"CipherText":"\([A-Za-z0-9+/=]*\)".*/\1/p' "$work/answer.json")"
[[ -n "$ciphertext" ]] || fail "the answer carries no CipherText: $(cat "$work/answer.json")"
base64 -d <<<"$ciphertext" >"$work/ciphertext.bin"
decrypted="$(aws_local kms decrypt --ciphertext-blob "fileb://$work/ciphertext.bin" --encryption-context "purpose=$purpose" \
    --query "[KeyId, Plaintext]" --output text)"
expect_equal "CipherText is the webhook encrypted with the stack key for its purpose" "$key_arn $webhook" \
    "$(cut -f1 <<<"$decrypted") $(cut -f2 <<<"$decrypted" | base64 -d)"
! aws_local kms decrypt --ciphertext-blob "fileb://$work/ciphertext.bin" >/dev/null 2>&1 ||
    fail "the webhook's CipherText decrypts without its encryption context"
pass "the webhook's CipherText does not decrypt without its encryption context"
# The operations relay's copy of the webhook, encrypted with a key of its own for a purpose of
# its own: CloudFormation asks for it once the stack's own secret is answered.
ops_key=""
for _ in $(seq 900); do
    ops_key="$(aws_local kms list-aliases --query "Aliases[?AliasName=='alias/$STACK_NAME-OperationsKey'].TargetKeyId | [0]" \
        --output text 2>/dev/null || true)"
    [[ -n "$ops_key" && "$ops_key" != None ]] && break
    sleep 0.2
done
[[ -n "$ops_key" && "$ops_key" != None ]] || fail "dev.sh create made no operations key"
[[ "$ops_key" == arn:* ]] ||
    ops_key="arn:aws:kms:us-east-1:$(aws_local sts get-caller-identity --query Account --output text):key/$ops_key"
ops_purpose=activity-aware-ids/operations-slack-webhook-url
sed -e "s|\"LogicalResourceId\": \"EncryptedSlackWebhookURL\"|\"LogicalResourceId\": \"EncryptedOperationsSlackWebhookURL\"|" \
    -e "s|\"KeyId\": \"$key_arn\"|\"KeyId\": \"$ops_key\"|" -e "s|\"purpose\": \"$purpose\"|\"purpose\": \"$ops_purpose\"|" \
    -e 's|"RequestId": "stack-test-request"|"RequestId": "stack-test-operations-request"|' \
    "$work/custom-resource.json" >"$work/operations-resource.json"
"$world" custom-resource --binary "$bin/kms-encryption" --request "$work/operations-resource.json" \
    --answer-file "$work/operations-answer.json" --env "AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL" --env AWS_ACCESS_KEY_ID=stack-test \
    --env AWS_SECRET_ACCESS_KEY=stack-test --env AWS_REGION=us-east-1 --env AWS_EC2_METADATA_DISABLED=true \
    >"$work/operations-resource.out" 2>&1 || { cat "$work/operations-resource.out" >&2; fail "kms-encryption did not answer the operations webhook's custom resource"; }
ops_ciphertext="$(sed -n 's/.*"CipherText":"\([A-Za-z0-9+/=]*\)".*/\1/p' "$work/operations-answer.json")"
base64 -d <<<"$ops_ciphertext" >"$work/operations-ciphertext.bin"
expect_equal "the operations relay's CipherText is the webhook under the operations key, for its purpose" "$ops_key $webhook" \
    "$(aws_local kms decrypt --ciphertext-blob "fileb://$work/operations-ciphertext.bin" --encryption-context "purpose=$ops_purpose" \
        --query "[KeyId, Plaintext]" --output text | sed 's/\t/ /' | { read -r id text; echo "$id $(base64 -d <<<"$text")"; })"
wait "$create_pid" || { cat "$work/create.log" >&2; fail "dev.sh create failed"; }
grep -q "SNSTopicArn" "$work/create.log" || fail "dev.sh create printed no outputs: $(cat "$work/create.log")"
pass "dev.sh create (webhook on standard input) finished and printed the outputs"

expect_equal "stack status" CREATE_COMPLETE \
    "$(aws_local cloudformation describe-stacks --stack-name "$STACK_NAME" --query "Stacks[0].StackStatus" --output text)"
expect_equal "the stack's parameters: architecture and no CloudTrail log group" "$ARCH|" \
    "$(aws_local cloudformation describe-stacks --stack-name "$STACK_NAME" --output text \
        --query "Stacks[0].[Parameters[?ParameterKey=='Architecture'].ParameterValue | [0], Parameters[?ParameterKey=='CloudTrailCloudWatchLogsGroupName'].ParameterValue | [0]]" |
        tr '\t' '|' | sed 's/|None$/|/')"
# (not DescribeStackResource: moto answers it with a 500 when the stack holds a type it fakes)
resources="$(aws_local cloudformation describe-stack-resources --stack-name "$STACK_NAME" \
    --query "StackResources[?ResourceType!=null].[LogicalResourceId, ResourceType]" --output text | sort)"
# Every resource in the template but those moto fakes, and those whose condition the default
# parameters leave off (no log group, no honey bucket, no fast denial alerts, no webhook routes,
# no operations email, no containment, no Teams, PagerDuty or email destination).
expected="$(awk '
    /^Resources:/ { in_resources = 1; next }
    /^[A-Za-z]/ { in_resources = 0 }
    in_resources && /^  [A-Za-z0-9]+:$/ { name = $1; sub(":", "", name); next }
    in_resources && /^    Type: / { types[name] = $2 }
    in_resources && /^    Condition: (CloudTrailConfigured|HoneyBucketAlertsOn|FastDenialAlertsOn|HasSlackWebhookRoutes|HasOperationsEmail|ProbeContainmentOn|HasTeamsWebhook|HasPagerDutyRoutingKey|HasEmail|DeploysMembers|WatchesOrganization)$/ { conditional[name] = 1 }
    END { for (n in types) if (!(n in conditional)) print n "\t" types[n] }' infrastructure/cloudformation.yaml |
    grep -Ev $'\t(AWS::SNS::Subscription|AWS::SNS::TopicPolicy|AWS::Lambda::EventInvokeConfig|AWS::SQS::QueuePolicy|AWS::CloudWatch::Alarm|AWS::Events::EventBusPolicy)$' | sort)"
[[ "$resources" == "$expected" ]] || fail "the stack's resources differ from the template's:
$(diff <(echo "$expected") <(echo "$resources") || true)"
pass "the stack has every resource of the template that moto makes ($(wc -l <<<"$resources") of them)"

output() {
    aws_local cloudformation describe-stacks --stack-name "$STACK_NAME" \
        --query "Stacks[0].Outputs[?OutputKey=='$1'].OutputValue | [0]" --output text
}
physical() {
    aws_local cloudformation describe-stack-resources --stack-name "$STACK_NAME" \
        --query "StackResources[?LogicalResourceId=='$1'].PhysicalResourceId | [0]" --output text
}
topic="$(output SNSTopicArn)"
expect_equal "output SNSTopicArn is the stack's topic" "$(physical SNSTopic)" "$topic"
expect_equal "the topic is encrypted with the stack key" "$key_arn" \
    "$(aws_local sns get-topic-attributes --topic-arn "$topic" --query Attributes.KmsMasterKeyId --output text)"
expect_equal "the SNSTopicArn export" "$topic" \
    "$(aws_local cloudformation list-exports --query "Exports[?Name=='$STACK_NAME-SNSTopic'].Value" --output text)"
expect_equal "the stack key rotates" True \
    "$(aws_local kms get-key-rotation-status --key-id "$key_arn" --query KeyRotationEnabled --output text)"
for fn in "${functions[@]}"; do
    prefix="$(camel "$fn")"
    name="$(output "${prefix}FunctionName")"
    # Containment and the Teams, PagerDuty and email destinations are off by default: their
    # functions are not among the resources expected above, nor in the stack.
    if ! grep -q "^${prefix}Lambda"$'\t' <<<"$expected"; then
        expect_equal "$fn is off by default: no $prefix function" None "$name"
        continue
    fi
    expect_equal "output ${prefix}FunctionName names the function" "$(physical "${prefix}Lambda")" "$name"
    expect_equal "$prefix: runtime, handler and role" "provided.al2023 bootstrap $(physical "${prefix}Role")" \
        "$(aws_local lambda get-function-configuration --function-name "$name" --query "[Runtime, Handler, Role]" --output text |
            awk '{ sub(".*/", "", $3); print $1, $2, $3 }')"
    expect_equal "log group of $prefix keeps 90 days" "/aws/lambda/$STACK_NAME-$prefix 90" \
        "$(aws_local logs describe-log-groups --log-group-name-prefix "/aws/lambda/$STACK_NAME-$prefix" \
            --query "logGroups[0].[logGroupName, retentionInDays]" --output text | tr '\t' ' ')"
done
for queue_output in SourceCloudtrailCloudwatchLogsFailureQueueUrl SourceEventbridgeFailureQueueUrl DestinationSlackQueueUrl \
    DestinationSlackFailureQueueUrl; do
    queue="$(output "$queue_output")"
    expect_equal "$queue_output: encrypted with the stack key, kept 14 days" "$key_arn 1209600" \
        "$(aws_local sqs get-queue-attributes --queue-url "$queue" --attribute-names KmsMasterKeyId MessageRetentionPeriod \
            --query "Attributes.[KmsMasterKeyId, MessageRetentionPeriod]" --output text | tr '\t' ' ')"
done
buffer="$(output DestinationSlackQueueUrl)"
expect_equal "the buffer queue hides a received message for 6 times the function's timeout and its batching window" 380 \
    "$(aws_local sqs get-queue-attributes --queue-url "$buffer" --attribute-names VisibilityTimeout --query Attributes.VisibilityTimeout --output text)"
redrive_policy="$(aws_local sqs get-queue-attributes --queue-url "$buffer" --attribute-names RedrivePolicy --query Attributes.RedrivePolicy --output text)"
dead_letter_queue="$(output DestinationSlackFailureQueueUrl)"
if [[ "$redrive_policy" != *":${dead_letter_queue##*/}\""* ]] || ! grep -Eq '"maxReceiveCount": ?"?5"?' <<<"$redrive_policy"; then
    fail "the buffer queue's redrive policy: $redrive_policy"
fi
pass "the buffer queue moves a Message to its failure queue after 5 receives"
policy="$(aws_local iam get-role-policy --role-name "$(physical DestinationSlackRole)" \
    --policy-name ReadQueueAndDecryptWebhook --query PolicyDocument --output text)"
[[ "$policy" == *"$key_arn"* && "$policy" == *"$purpose"* && "$policy" != *"'Resource': '*'"* && "$policy" != *'"Resource": "*"'* &&
    "$policy" != *organizations:* ]] ||
    fail "the destination's role: $policy"
pass "the destination's role may decrypt with the stack key, for the webhook's purpose, names no resource '*' and reads no organisation (AccountNamesFromOrganizations is off)"

# --- the functions run: the Lambda Invoke API in front of moto ---
# moto gave the Slack function no SLACK_WEBHOOK_URL (it resolved the custom resource's
# CipherText too early); give it the answer's.
slack_function="$(output DestinationSlackFunctionName)"
aws_local lambda get-function-configuration --function-name "$slack_function" --query Environment --output json |
    sed -e '/"SLACK_WEBHOOK_URL"/d' -e "s#\"Variables\": {#\"Variables\": {\"SLACK_WEBHOOK_URL\": \"$ciphertext\",#" >"$work/environment.json"
{ grep -q '"ACCOUNT_NAMES_FROM_ORGANIZATIONS": "false"' "$work/environment.json" &&
    grep -q '"SLACK_WEBHOOK_ROUTES": ""' "$work/environment.json"; } ||
    fail "the Slack function's environment, by default: $(cat "$work/environment.json")"
pass "by default the Slack function has no webhook routes and looks up no organisation"
aws_local lambda update-function-configuration --function-name "$slack_function" \
    --environment "file://$work/environment.json" >/dev/null
source_failures="$(output SourceCloudtrailCloudwatchLogsFailureQueueUrl)"
eventbridge_failures="$(output SourceEventbridgeFailureQueueUrl)"
start_lambda_service() {
    local name="$1"
    shift
    "$world" lambda-service --endpoint-file "$work/$name.url" --moto "$AWS_ENDPOINT_URL" --bin-dir "$bin" \
        --on-failure "source-cloudtrail-cloudwatch-logs=$source_failures" \
        --on-failure "source-eventbridge=$eventbridge_failures" --env "SSL_CERT_FILE=$work/ca.pem" "$@" \
        >"$work/$name.log" 2>&1 &
    pids+=("$!")
    wait_until "the $name Lambda service did not start: $(cat "$work/$name.log")" 100 test -s "$work/$name.url"
}
start_lambda_service lambda
# The same, during an SNS outage (the SDK gives up on its first try: the outage is not what is
# tested, what becomes of the delivery is).
start_lambda_service lambda-sns-down --env AWS_ENDPOINT_URL_SNS=http://127.0.0.1:9 --env AWS_MAX_ATTEMPTS=1
AWS_ENDPOINT_URL_LAMBDA="$(cat "$work/lambda.url")"
export AWS_ENDPOINT_URL_LAMBDA

# What the topic publishes, seen through a queue of the test's own (moto makes no subscription).
capture="$(aws_local sqs create-queue --queue-name stack-test-capture --query QueueUrl --output text)"
capture_arn="$(aws_local sqs get-queue-attributes --queue-url "$capture" --attribute-names QueueArn --query Attributes.QueueArn --output text)"
aws_local sns subscribe --topic-arn "$topic" --protocol sqs --notification-endpoint "$capture_arn" \
    --attributes RawMessageDelivery=true >/dev/null
published_subjects() {
    aws_local sqs receive-message --queue-url "$capture" --max-number-of-messages 10 --wait-time-seconds 2 \
        --query "Messages[].Body" --output text | grep -o '"subject":"[^"]*"' | sed 's/^"subject":"//; s/"$//' || true
}
# "<visible> <in flight>" messages of a queue.
queue_depth() {
    aws_local sqs get-queue-attributes --queue-url "$1" --attribute-names ApproximateNumberOfMessages \
        ApproximateNumberOfMessagesNotVisible --query "Attributes.[ApproximateNumberOfMessages, ApproximateNumberOfMessagesNotVisible]" \
        --output text | tr '\t' ' '
}

# --- invoke: the real functions, with the stack's configuration ---
./dev.sh invoke source-cloudtrail-cloudwatch-logs events/source-cloudtrail-cloudwatch-logs.json >"$work/invoke-source.log" 2>&1 ||
    { cat "$work/invoke-source.log" >&2; fail "dev.sh invoke source-cloudtrail-cloudwatch-logs"; }
grep -q '"published": \?1' "$work/invoke-source.log" || fail "the source did not publish: $(cat "$work/invoke-source.log")"
[[ "$(published_subjects)" == "Error Message: User: arn:aws:iam::187901811700:user/exposed.user is not authorized to perform: lambda:ListFunctions"* ]] ||
    fail "the stack's topic did not get the denial's Message"
pass "dev.sh invoke ran the source with the stack's topic, which got the Message"
# The same denial through EventBridge is the same event: told already, through the stack's own
# memory (its DynamoDB table), and not posted twice.
./dev.sh invoke source-eventbridge events/source-eventbridge.json >"$work/invoke-eventbridge.log" 2>&1 ||
    { cat "$work/invoke-eventbridge.log" >&2; fail "dev.sh invoke source-eventbridge"; }
grep -q '"alreadyTold": \?true' "$work/invoke-eventbridge.log" ||
    fail "the denial came twice and was not told once: $(cat "$work/invoke-eventbridge.log")"
pass "the denial that reached both sources was posted once (the stack's memory)"
# Another denial (its own event ID) through EventBridge reaches the topic.
sed 's/57b719ad-f2fa-4d18-bd84-29fee11799b1/57b719ad-f2fa-4d18-bd84-0000000000e8/g' events/source-eventbridge.json \
    >"$work/another-denial.json"
./dev.sh invoke source-eventbridge "$work/another-denial.json" >>"$work/invoke-eventbridge.log" 2>&1 ||
    { cat "$work/invoke-eventbridge.log" >&2; fail "dev.sh invoke source-eventbridge (another denial)"; }
[[ "$(published_subjects)" == "Error Message: User: arn:aws:iam::187901811700:user/exposed.user is not authorized to perform: lambda:ListFunctions"* ]] ||
    fail "the stack's topic did not get the denial's Message from EventBridge: $(cat "$work/invoke-eventbridge.log")"
./dev.sh invoke source-eventbridge events/source-eventbridge-console-sign-in.json >>"$work/invoke-eventbridge.log" 2>&1 ||
    { cat "$work/invoke-eventbridge.log" >&2; fail "dev.sh invoke source-eventbridge (sign-in)"; }
expect_equal "a root sign-in through EventBridge" "Root user signed in to the AWS console without MFA" "$(published_subjects)"
pass "dev.sh invoke ran the EventBridge source: the same denial's Message, a root sign-in said plainly"
# The rules on by default, each sending its events to the EventBridge source.
eventbridge_function="$(output SourceEventbridgeFunctionName)"
rules="$(aws_local events list-rules --query 'Rules[].Name' --output text | wc -w)"
expected_rules="$(grep -c '^    Type: AWS::Events::Rule$' infrastructure/cloudformation.yaml)"
central_rules="$(awk '/^    Type: / { type = $2 } type == "AWS::Events::Rule" && /^      EventBusName: !GetAtt CentralEventBus.Name$/ { n++ } END { print n + 0 }' infrastructure/cloudformation.yaml)"
expect_equal "the rules on by default on the default bus (all but honey bucket and fast denials)" \
    "$((expected_rules - central_rules - 2))" "$rules"
# The central bus's: what member stacks forward goes to the source, an opened group to the responder.
central_bus="$STACK_NAME-central"
responder_function="$(output ResponseSecurityGroupFunctionName)"
while read -r rule target; do
    case "$rule" in
        *-CentralBusOpenSecurityGroupResponseRule-*) [[ "$target" == *":function:$responder_function" ]] ;;
        *) [[ "$target" == *":function:$eventbridge_function" ]] ;;
    esac || fail "central bus rule $rule targets $target"
done < <(rule_targets "$central_bus")
expect_equal "the central bus's rules" "$central_rules" \
    "$(aws_local events list-rules --event-bus-name "$central_bus" --query 'Rules[].Name' --output text | wc -w)"
heartbeat_function="$(output SourceHeartbeatFunctionName)"
while read -r rule target; do
    # The heartbeat's schedule starts the heartbeat, the open-port response's rule its responder;
    # every other rule feeds the EventBridge source.
    expected_function="$eventbridge_function"
    [[ "$rule" == *-HeartbeatScheduleRule-* || "$rule" == *-CoverageScheduleRule-* ]] && expected_function="$heartbeat_function"
    [[ "$rule" == *-OpenSecurityGroupResponseRule-* ]] && expected_function="$responder_function"
    [[ "$target" == *":function:$expected_function" ]] || fail "rule $rule targets $target"
done < <(rule_targets default)
pass "each rule sends its events to its function: the EventBridge source, the heartbeat or the responder"
./dev.sh invoke destination-slack events/destination-slack.json >"$work/invoke-destination.log" 2>&1 ||
    { cat "$work/invoke-destination.log" >&2; fail "dev.sh invoke destination-slack"; }
grep -q '"batchItemFailures": \?\[\]' "$work/invoke-destination.log" || fail "the Slack function did not post: $(cat "$work/invoke-destination.log")"
wait_until "the Slack stand-in got no post" 50 grep -q '"text"' "$work/slack.log"
grep -q 'Count: 3' "$work/slack.log" || fail "Slack did not get one digest of the three Messages: $(cat "$work/slack.log")"
pass "dev.sh invoke ran the Slack function, which decrypted the stack's webhook and posted one digest of three"

# --- redrive: a delivery the source could not publish (SNS down) is kept, then replayed ---
# The committed delivery's denial was posted above, and a told event is not told again: each
# delivery here carries the same denial under an event ID of its own, as another denial would.
with_event_id() {
    python3 - "$1" "$2" >"$3" <<'PY'
import base64, gzip, json, sys
path, suffix = sys.argv[1], sys.argv[2]
delivery = json.load(open(path))
logs = gzip.decompress(base64.b64decode(delivery["awslogs"]["data"])).decode()
logs = logs.replace("57b719ad-f2fa-4d18-bd84-29fee11799b1", "57b719ad-f2fa-4d18-bd84-" + suffix)
delivery["awslogs"]["data"] = base64.b64encode(gzip.compress(logs.encode())).decode()
json.dump(delivery, sys.stdout)
PY
}
with_event_id events/source-cloudtrail-cloudwatch-logs.json 0000000000f1 "$work/kept-delivery.json"
with_event_id events/source-cloudtrail-cloudwatch-logs.json 0000000000f2 "$work/kept-again-delivery.json"
echo '{}' >"$work/invoked.json"
aws --endpoint-url "$(cat "$work/lambda-sns-down.url")" lambda invoke --invocation-type Event \
    --function-name "$(output SourceCloudtrailCloudwatchLogsFunctionName)" \
    --payload "fileb://$work/kept-delivery.json" "$work/invoked.json" >/dev/null
holds() { [[ "$(queue_depth "$1")" == "$2" ]]; }
wait_until "the failed delivery did not reach the source's failure queue" 900 holds "$source_failures" "1 0"
pass "after three failed tries (SNS down), the delivery is in the source's failure queue"
./dev.sh redrive source-cloudtrail-cloudwatch-logs >"$work/redrive-source.log" 2>&1 ||
    { cat "$work/redrive-source.log" >&2; fail "dev.sh redrive source-cloudtrail-cloudwatch-logs"; }
grep -q "replayed 1 message(s) into .*: 1 handled and deleted, 0 failed again and kept" "$work/redrive-source.log" ||
    fail "dev.sh redrive said: $(cat "$work/redrive-source.log")"
expect_equal "the source's failure queue is empty after the redrive" "0 0" "$(queue_depth "$source_failures")"
[[ "$(published_subjects)" == "Error Message: User: arn:aws:iam::187901811700:user/exposed.user"* ]] ||
    fail "the redriven delivery was not published"
pass "dev.sh redrive published the kept delivery"
# A Message Slack never took (moved by the buffer queue's redrive policy) is replayed as a batch.
slack_failures="$(output DestinationSlackFailureQueueUrl)"
cat >"$work/kept-message.json" <<'EOF'
{"subject":"Event: a Message Slack never took","fields":[{"key":"Event","value":"a Message Slack never took"}],"metadata":{},"tags":[]}
EOF
aws_local sqs send-message --queue-url "$slack_failures" --message-body "file://$work/kept-message.json" >/dev/null
posts_before="$(grep -c '"text"' "$work/slack.log")"
./dev.sh redrive destination-slack >"$work/redrive-destination.log" 2>&1 ||
    { cat "$work/redrive-destination.log" >&2; fail "dev.sh redrive destination-slack"; }
grep -q "1 handled and deleted, 0 failed again and kept" "$work/redrive-destination.log" ||
    fail "dev.sh redrive said: $(cat "$work/redrive-destination.log")"
expect_equal "the Slack function's failure queue is empty after the redrive" "0 0" "$(queue_depth "$slack_failures")"
more_posts_than() { [[ "$(grep -c '"text"' "$work/slack.log")" -gt "$1" ]]; }
wait_until "the redriven Message never reached Slack" 50 more_posts_than "$posts_before"
pass "dev.sh redrive posted the Message Slack had never taken"
# What still fails stays: a delivery replayed during the outage is kept.
aws --endpoint-url "$(cat "$work/lambda-sns-down.url")" lambda invoke --invocation-type Event \
    --function-name "$(output SourceCloudtrailCloudwatchLogsFunctionName)" \
    --payload "fileb://$work/kept-again-delivery.json" "$work/invoked.json" >/dev/null
wait_until "the second failed delivery did not reach the failure queue" 900 holds "$source_failures" "1 0"
AWS_ENDPOINT_URL_LAMBDA="$(cat "$work/lambda-sns-down.url")" ./dev.sh redrive source-cloudtrail-cloudwatch-logs \
    >"$work/redrive-again.log" 2>&1 && fail "dev.sh redrive succeeded while SNS was down"
grep -q "0 handled and deleted, 1 failed again and kept" "$work/redrive-again.log" || fail "dev.sh redrive said: $(cat "$work/redrive-again.log")"
expect_equal "a delivery that fails again stays in the failure queue" "0 1" "$(queue_depth "$source_failures")"

# --- upload ---
./dev.sh upload destination-slack >"$work/upload.log" 2>&1 || { cat "$work/upload.log" >&2; fail "dev.sh upload"; }
expect_equal "dev.sh upload updated the destination's code" \
    "$(wc -c <dist/destination-slack/destination-slack.zip | tr -d ' ')" \
    "$(aws_local lambda get-function-configuration --function-name "$slack_function" --query CodeSize --output text)"

# --- package ---
./dev.sh package >"$work/package.log" 2>&1 || { cat "$work/package.log" >&2; fail "dev.sh package"; }
url="$(grep -o "$AWS_ENDPOINT_URL/$BUILD_ARTIFACT_BUCKET/cloudformation/[0-9-]*\.yaml" "$work/package.log" | head -n 1)"
[[ -n "$url" ]] || fail "dev.sh package printed no template URL: $(cat "$work/package.log")"
link="$(grep -o 'https://console.aws.amazon.com/cloudformation/home?region=us-east-1#/stacks/quickcreate?[^ ]*' "$work/package.log")"
query="${link#*quickcreate?}"
decode() { printf '%b' "${1//%/\\x}"; }
member_url="${url%/*}/member-${url##*/}"
IFS='&' read -r q_stack q_template q_member <<<"$query"
expect_equal "the quick-create link names the stack, the template and member.yaml, URL-encoded" \
    "stackName=$STACK_NAME&templateURL=$url&param_MemberTemplateURL=$member_url" \
    "stackName=$(decode "${q_stack#stackName=}")&templateURL=$(decode "${q_template#templateURL=}")&param_MemberTemplateURL=$(decode "${q_member#param_MemberTemplateURL=}")"
[[ "$q_template$q_member" != *[:/]* ]] || fail "a URL in the link is not encoded: $link"
aws_local s3api head-object --bucket "$BUILD_ARTIFACT_BUCKET" --key "${member_url#"$AWS_ENDPOINT_URL/$BUILD_ARTIFACT_BUCKET/"}" >/dev/null ||
    fail "member.yaml is not in the bucket at $member_url"
key="${url#"$AWS_ENDPOINT_URL/$BUILD_ARTIFACT_BUCKET/"}"
aws_local s3 cp "s3://$BUILD_ARTIFACT_BUCKET/$key" "$work/packaged.yaml" >/dev/null || fail "the packaged template is not in the bucket"
# Every function's zip, once each (the operations relay runs the Slack function's code too).
[[ "$(sed -n 's/^ *S3Key: //p' "$work/packaged.yaml" | sort -u | wc -l)" -eq ${#functions[@]} ]] &&
    [[ "$(grep -c "S3Bucket: $BUILD_ARTIFACT_BUCKET" "$work/packaged.yaml")" -eq "$(grep -c '^      Code: \.\./dist/' infrastructure/cloudformation.yaml)" ]] ||
    fail "the packaged template does not point at the uploaded zips"
while read -r code_key; do
    aws_local s3api head-object --bucket "$BUILD_ARTIFACT_BUCKET" --key "$code_key" >/dev/null ||
        fail "the packaged template's code s3://$BUILD_ARTIFACT_BUCKET/$code_key is not in the bucket"
done < <(sed -n 's/^ *S3Key: //p' "$work/packaged.yaml")
cfn-lint -- "$work/packaged.yaml" || fail "cfn-lint reports on the packaged template"
pass "dev.sh package uploaded a lint-clean template and the code it points at, and printed its URL and quick-create link"

# --- the webhook never shows ---
for log in create invoke-source invoke-eventbridge invoke-destination redrive-source redrive-destination upload package lambda lambda-sns-down; do
    ! grep -q "$secret" "$work/$log.log" || fail "the webhook URL appears in $log's output"
done
# (not the stack's Parameters: moto shows NoEcho values there; tests/template_test.py checks
# that SlackWebhookURL is NoEcho)
{
    aws_local cloudformation describe-stacks --stack-name "$STACK_NAME" --query "Stacks[0].Outputs" --output json
    for fn in "${functions[@]}"; do
        name="$(output "$(camel "$fn")FunctionName")"
        # (the functions off by default have none)
        [[ "$name" == None ]] || aws_local lambda get-function-configuration --function-name "$name" --output json
    done
} >"$work/described.json"
! grep -q "$secret" "$work/described.json" || fail "the webhook URL shows in the stack's outputs or functions"
pass "the webhook URL appears in no command's output, nor in the stack's outputs or functions"

# --- delete ---
./dev.sh delete >"$work/delete.log" 2>&1 || { cat "$work/delete.log" >&2; fail "dev.sh delete"; }
expect_equal "no stack left after dev.sh delete" "" \
    "$(aws_local cloudformation list-stacks --query "StackSummaries[?StackName=='$STACK_NAME' && StackStatus!='DELETE_COMPLETE'].StackStatus" --output text)"
expect_equal "no function left after dev.sh delete" "" \
    "$(aws_local lambda list-functions --query "Functions[?contains(FunctionName, 'StackTest')].FunctionName" --output text)"
expect_equal "no export left after dev.sh delete" "" \
    "$(aws_local cloudformation list-exports --query "Exports[?Name=='$STACK_NAME-SNSTopic'].Value" --output text)"

echo "stack test: $passed passed, 0 failed"
