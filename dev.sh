#!/usr/bin/env bash
# Development commands for Activity Aware IDS for AWS. Run `./dev.sh help` for the list.
#
# Every AWS call honours AWS_ENDPOINT_URL (and AWS_ENDPOINT_URL_<SERVICE>, such as
# AWS_ENDPOINT_URL_LAMBDA), so the whole workflow also runs against a local moto server. The
# Python tools it needs (requirements.txt: cargo-lambda and the zig it links with, awscli, moto,
# cfn-lint, checkov and the shellcheck binary, each pinned by version and hash) are installed on
# first use into a project-local virtualenv, .venv/.
set -euo pipefail

if [[ -z "${BASH_VERSINFO[0]:-}" || "${BASH_VERSINFO[0]}" -lt 4 ]]; then
    echo "error: dev.sh needs bash 4 or later (this is bash ${BASH_VERSION:-unknown}; on macOS: brew install bash, then run it with that bash)" >&2
    exit 6
fi

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"

STACK_NAME="${STACK_NAME:-Activity-Aware-IDS-Dev}"
# The template's WatchedRegions default (org-management).
WATCHED_REGIONS="${WATCHED_REGIONS:-us-east-1,us-east-2,us-west-1,us-west-2,ca-central-1,sa-east-1,eu-west-1,eu-west-2,eu-west-3,eu-central-1,eu-north-1,ap-south-1,ap-northeast-1,ap-northeast-2,ap-northeast-3,ap-southeast-1,ap-southeast-2}"
BUILD_ARTIFACT_BUCKET="${BUILD_ARTIFACT_BUCKET:-activity-aware-ids-aws-dev}"
ARCH="${ARCH:-arm64}"
TEMPLATE="infrastructure/cloudformation.yaml"
MEMBER_TEMPLATE="infrastructure/member.yaml"
DEFAULT_EVENT="events/source-cloudtrail-cloudwatch-logs.json"
VENV="$ROOT/.venv"
REQUIREMENTS="$ROOT/requirements.txt"

# The functions, as the template deploys them: each `Code: ../dist/<crate>/<crate>.zip`, once
# (the operations relay runs the Slack function's code).
mapfile -t FUNCTIONS < <(sed -n 's#^ *Code: \.\./dist/\([a-z0-9-]*\)/\1\.zip$#\1#p' "$TEMPLATE" | awk '!seen[$0]++')

# Exit codes.
E_FAILED=1    # a build, test or AWS call failed
E_UNKNOWN=2   # unknown command
E_USAGE=3     # missing or extra arguments
E_NO_FILE=4   # a file the command needs does not exist
E_BAD_VALUE=5 # an argument or variable has a value that cannot work
E_NO_TOOL=6   # a prerequisite (cargo, python3, bash 4) is missing

usage() {
    cat <<EOF
usage: $0 <command> [arguments]

  local [--all-destinations] [event.json | --flood [DENIALS] | --respond | --org]
                          the whole pipeline on this machine, no AWS account needed: moto,
                          the functions behind a local Lambda Runtime API and an HTTPS Slack
                          stand-in (or your SLACK_WEBHOOK_URL); prints what Slack received.
                          Default event: $DEFAULT_EVENT; --flood: a
                          permission-enumeration probe of DENIALS (1000) denials; --respond:
                          a security group opened to the internet is closed and a probing
                          user quarantined, in moto's EC2 and IAM; --org: the
                          organisation's stack, two accounts in three regions through the
                          central bus, a silent member region reported and a member
                          account's open group closed as its role; --all-destinations:
                          Teams, PagerDuty (HTTPS stand-ins) and email (moto's SES) too, each
                          at its minimum severity (TEAMS_MINIMUM_SEVERITY,
                          PAGERDUTY_MINIMUM_SEVERITY, EMAIL_MINIMUM_SEVERITY)
  test                    formatting, lints, unit and integration tests, template checks and
                          the stack test against moto
  build [function...]     release builds of the functions as Lambda zips in dist/ (ARCH=$ARCH)
  create                  package and create the stack \$STACK_NAME (no CloudTrail
                          subscription); the webhook URL comes from SLACK_WEBHOOK_URL, else
                          standard input (asked for on a terminal), never the command line;
                          SLACK_WEBHOOK_ROUTES (optional): webhooks of their own; the other
                          destinations (optional, each deployed when given): TEAMS_WEBHOOK_URL,
                          PAGERDUTY_ROUTING_KEY, EMAIL_FROM with EMAIL_TO, and their
                          TEAMS_, PAGERDUTY_ and EMAIL_MINIMUM_SEVERITY
  deploy [cfn args...]    package and update the stack (extra \`aws cloudformation deploy\` args)
  invoke <function> <json file>
                          invoke a deployed function with an event
  redrive <function>      replay what the function's failure queue holds into it, deleting
                          only what then succeeded
  upload <function>       build one function and update its code only
  package                 upload the functions, the template and member.yaml to
                          \$BUILD_ARTIFACT_BUCKET and print their URLs and a one-click launch link
  org-management <bus ARN> <stack name> <external ID> <responder role ARN> <mode> <org ID>
                          with the organisation's management account's credentials: member.yaml
                          in each of \$WATCHED_REGIONS there (StackSets never deploy to it)
  delete                  delete the stack
  functions               the functions the template deploys, one per line
  detections              remake the template's EventBridge rules and parameters and README's
                          detection table from crates/detections/catalogue.json
  bench                   the benchmark table (speed, cold start, memory, zip sizes, floods)
  fuzz [seconds]          libFuzzer on the decoder, the record mapping and the Message parser
  release                 dist/release/<version>/: every function's zip for arm64 and x86_64,
                          the installable template (no build, no bucket of yours: it copies
                          the zips, checked by SHA-256, from the GitHub release), SHA256SUMS
                          and QUICK-INSTALL.md; prints a quick-create link for each region.
                          Reproducible: needs the Rust of release/toolchain
  help                    this text

functions: ${FUNCTIONS[*]}
env: STACK_NAME ($STACK_NAME), BUILD_ARTIFACT_BUCKET ($BUILD_ARTIFACT_BUCKET),
     TEMPLATE_BASE_URL (release: where the template is published,
     $TEMPLATE_BASE_URL),
     ARCH (arm64|x86_64, now $ARCH), AWS_ENDPOINT_URL (send every AWS call there, e.g. moto),
     PREBUILT_BINARIES (build: zip this machine's binaries from that directory instead),
     SLACK_WEBHOOK_URL (create: the webhook to encrypt; local: post there, not to the stand-in),
     SLACK_WEBHOOK_ROUTES (create: account:ID=URL,channel:NAME=URL pairs to encrypt),
     TEAMS_WEBHOOK_URL, PAGERDUTY_ROUTING_KEY (create: a Teams Workflows webhook, a PagerDuty
     Events API v2 routing key, to encrypt), EMAIL_FROM, EMAIL_TO (create: the SES-verified
     sender, the recipients separated by commas), TEAMS_MINIMUM_SEVERITY,
     PAGERDUTY_MINIMUM_SEVERITY, EMAIL_MINIMUM_SEVERITY (create: info|low|medium|high|critical)
exit codes: 1 failed, 2 unknown command, 3 missing or extra arguments, 4 missing file,
     5 bad value, 6 missing prerequisite
EOF
}

# Temporary files and processes a command made, removed and stopped however it ends.
TEMP_FILES=()
PIDS=()

on_exit() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    [[ ${#TEMP_FILES[@]} -eq 0 ]] || rm -rf "${TEMP_FILES[@]}"
}
trap on_exit EXIT
trap 'exit 130' INT TERM

# Waits for a background process of ours; its status in WAITED (it is no longer stopped on exit).
wait_for() {
    local pid="$1" kept=() other
    WAITED=0
    wait "$pid" || WAITED=$?
    for other in "${PIDS[@]}"; do
        [[ "$other" == "$pid" ]] || kept+=("$other")
    done
    PIDS=("${kept[@]}")
}

# A new temporary file (private to this user), removed on exit; its path in TEMP_FILE.
new_temp_file() {
    TEMP_FILE="$(mktemp -t "activity-aware-ids.XXXXXX${1:-}")"
    chmod 600 "$TEMP_FILE"
    TEMP_FILES+=("$TEMP_FILE")
}

die() {
    local code="$1"
    shift
    echo "error: $*" >&2
    exit "$code"
}

need_command() {
    command -v "$1" >/dev/null 2>&1 || die "$E_NO_TOOL" "$1 is not installed${2:+ ($2)}"
}

# Installs requirements.txt into .venv (again whenever it changes), and puts .venv/bin first on
# PATH. Every package in it, the dependencies of dependencies too, is pinned with its SHA-256
# (made from requirements.in by pip-compile --generate-hashes), and pip refuses anything else.
ensure_tools() {
    install_tools
    export PATH="$VENV/bin:$PATH"
}

install_tools() {
    need_command python3 "Python 3.9 or later"
    if [[ ! -x "$VENV/bin/python" ]]; then
        echo "Creating .venv ..." >&2
        python3 -m venv "$VENV" ||
            die "$E_NO_TOOL" "python3 cannot create a virtualenv (on Debian/Ubuntu: apt-get install python3-venv)"
    fi
    local marker="$VENV/.requirements-installed"
    if ! cmp -s "$REQUIREMENTS" "$marker"; then
        echo "Installing requirements.txt into .venv ..." >&2
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --require-hashes -r "$REQUIREMENTS"
        cp "$REQUIREMENTS" "$marker"
    fi
}

# The AWS CLI, sent to AWS_ENDPOINT_URL_<SERVICE> or AWS_ENDPOINT_URL when set.
aws_cli() {
    local service="${1:-}" variable endpoint
    [[ "$service" == s3api ]] && service=s3
    variable="AWS_ENDPOINT_URL_${service^^}"
    endpoint="${!variable:-${AWS_ENDPOINT_URL:-}}"
    if [[ -n "$endpoint" ]]; then
        aws --endpoint-url "$endpoint" "$@"
    else
        aws "$@"
    fi
}

is_function() {
    local candidate="$1" fn
    for fn in "${FUNCTIONS[@]}"; do
        [[ "$fn" == "$candidate" ]] && return 0
    done
    return 1
}

require_function() {
    is_function "$1" || die "$E_BAD_VALUE" "'$1' is not a function (${FUNCTIONS[*]})"
}

# destination-slack -> DestinationSlack, the prefix of the function's logical ID and outputs.
logical_prefix() {
    local name="$1" part prefix=""
    local IFS='-'
    for part in $name; do
        prefix+="${part^}"
    done
    echo "$prefix"
}

stack_output() {
    local key="$1" value
    value="$(aws_cli cloudformation describe-stacks --stack-name "$STACK_NAME" \
        --query "Stacks[0].Outputs[?OutputKey=='$key'].OutputValue | [0]" --output text)"
    if [[ -z "$value" || "$value" == "None" ]]; then
        die "$E_FAILED" "stack $STACK_NAME has no output $key; is it created (./dev.sh create)?"
    fi
    echo "$value"
}

rust_target() {
    case "$ARCH" in
        arm64) echo aarch64-unknown-linux-gnu ;;
        x86_64) echo x86_64-unknown-linux-gnu ;;
        *) die "$E_BAD_VALUE" "ARCH must be arm64 or x86_64, not '$ARCH'" ;;
    esac
}

file_size() {
    wc -c <"$1" | tr -d ' '
}

# Zips binaries already built for this machine (PREBUILT_BINARIES, e.g. target/debug) as the
# functions' bootstraps: the stack test deploys zips whose code moto never runs, so it reuses the
# test build instead of building the dependency tree again for Lambda.
zip_prebuilt() {
    local fn binary
    [[ -d "$PREBUILT_BINARIES" ]] || die "$E_NO_FILE" "PREBUILT_BINARIES: $PREBUILT_BINARIES is no directory"
    [[ "$(uname -m)" == "$([[ "$ARCH" == arm64 ]] && echo aarch64 || echo x86_64)" ]] ||
        die "$E_BAD_VALUE" "PREBUILT_BINARIES are this machine's ($(uname -m)), not ARCH $ARCH"
    for fn in "$@"; do
        binary="$PREBUILT_BINARIES/$fn"
        [[ -x "$binary" ]] || die "$E_NO_FILE" "$binary does not exist (cargo build -p $fn)"
        mkdir -p "dist/$fn"
        # Without its debug information when strip is here: a tenth of the size to upload.
        if command -v strip >/dev/null 2>&1; then
            new_temp_file
            strip -o "$TEMP_FILE" "$binary" && binary="$TEMP_FILE"
        fi
        python3 - "$binary" "dist/$fn/$fn.zip" <<'PYTHON'
import sys, zipfile
binary, out = sys.argv[1], sys.argv[2]
info = zipfile.ZipInfo("bootstrap", date_time=(1980, 1, 1, 0, 0, 0))
info.external_attr = 0o100755 << 16
info.compress_type = zipfile.ZIP_DEFLATED
with open(binary, "rb") as f, zipfile.ZipFile(out, "w") as z:
    z.writestr(info, f.read())
PYTHON
        echo "dist/$fn/$fn.zip ($ARCH, from $PREBUILT_BINARIES/$fn, $(file_size "dist/$fn/$fn.zip") bytes)"
    done
}

cmd_build() {
    local fns=("$@") fn target flag
    [[ ${#fns[@]} -eq 0 ]] && fns=("${FUNCTIONS[@]}")
    for fn in "${fns[@]}"; do
        require_function "$fn"
    done
    target="$(rust_target)"
    [[ "$ARCH" == arm64 ]] && flag=--arm64 || flag=--x86-64
    if [[ -n "${PREBUILT_BINARIES:-}" ]]; then
        zip_prebuilt "${fns[@]}"
        return
    fi
    need_command cargo "https://rustup.rs"
    ensure_tools
    if command -v rustup >/dev/null 2>&1 && ! rustup target list --installed | grep -qx "$target"; then
        rustup target add "$target"
    fi
    local bins=()
    for fn in "${fns[@]}"; do bins+=(--bin "$fn"); done
    cargo lambda build --release "$flag" --output-format zip "${bins[@]}"
    for fn in "${fns[@]}"; do
        mkdir -p "dist/$fn"
        cp "target/lambda/$fn/bootstrap.zip" "dist/$fn/$fn.zip"
        echo "dist/$fn/$fn.zip ($ARCH, $(file_size "dist/$fn/$fn.zip") bytes)"
    done
}

require_dist() {
    local fn
    for fn in "${FUNCTIONS[@]}"; do
        [[ -f "dist/$fn/$fn.zip" ]] || die "$E_NO_FILE" "dist/$fn/$fn.zip is missing; run ./dev.sh build first"
    done
}

region() {
    local r="${AWS_REGION:-${AWS_DEFAULT_REGION:-}}"
    [[ -n "$r" ]] || r="$(aws configure get region 2>/dev/null || true)"
    echo "${r:-us-east-1}"
}

# The artifact bucket, made in this region when it does not exist.
ensure_bucket() {
    if ! aws_cli s3api head-bucket --bucket "$BUILD_ARTIFACT_BUCKET" >/dev/null 2>&1; then
        local r
        r="$(region)"
        echo "Creating bucket $BUILD_ARTIFACT_BUCKET in $r ..." >&2
        if [[ "$r" == us-east-1 ]]; then
            aws_cli s3api create-bucket --bucket "$BUILD_ARTIFACT_BUCKET" --region "$r" >/dev/null
        else
            aws_cli s3api create-bucket --bucket "$BUILD_ARTIFACT_BUCKET" --region "$r" \
                --create-bucket-configuration "LocationConstraint=$r" >/dev/null
        fi
    fi
}

# Uploads the function zips; writes the packaged template to a temporary file, PACKAGED.
package_template() {
    require_dist
    ensure_bucket
    new_temp_file .yaml
    PACKAGED="$TEMP_FILE"
    aws_cli cloudformation package --template-file "$TEMPLATE" --s3-bucket "$BUILD_ARTIFACT_BUCKET" \
        --s3-prefix lambdas --output-template-file "$PACKAGED" >/dev/null
}

print_stack_errors() {
    echo "Recent CloudFormation errors:" >&2
    aws_cli cloudformation describe-stack-events --stack-name "$STACK_NAME" \
        --query "reverse(StackEvents[?ResourceStatus=='CREATE_FAILED'||ResourceStatus=='UPDATE_FAILED'||ResourceStatus=='DELETE_FAILED'].[ResourceType,LogicalResourceId,ResourceStatusReason])" \
        --output text >&2 || true
}

# The webhook URL from SLACK_WEBHOOK_URL, else standard input (asked for, unechoed, on a
# terminal): never from the command line, which other users can see in `ps`.
read_webhook() {
    local webhook="${SLACK_WEBHOOK_URL:-}"
    if [[ -z "$webhook" ]]; then
        if [[ -t 0 ]]; then
            read -r -s -p "Slack webhook URL (https://hooks.slack.com/services/...): " webhook
            echo >&2
        else
            read -r webhook || true
        fi
    fi
    [[ -n "$webhook" ]] || die "$E_USAGE" "no webhook URL: set SLACK_WEBHOOK_URL or give it on standard input"
    [[ "$webhook" == https://?* ]] || die "$E_BAD_VALUE" "the Slack webhook URL must start with https://"
    WEBHOOK="$webhook"
}

# JSON string of a value (for the parameters file).
json_string() {
    local text="$1"
    text="${text//\\/\\\\}"
    text="${text//\"/\\\"}"
    printf '"%s"' "$text"
}

# The other destinations' settings, from the environment only (the secret ones never from the
# command line, and never echoed), checked before anything is made.
check_destinations() {
    local variable severity
    if [[ -n "${TEAMS_WEBHOOK_URL:-}" && "$TEAMS_WEBHOOK_URL" != https://?* ]]; then
        die "$E_BAD_VALUE" "TEAMS_WEBHOOK_URL must start with https://"
    fi
    if [[ -n "${PAGERDUTY_ROUTING_KEY:-}" && ! "$PAGERDUTY_ROUTING_KEY" =~ ^[A-Za-z0-9]{20,128}$ ]]; then
        die "$E_BAD_VALUE" "PAGERDUTY_ROUTING_KEY must be a routing key (20 to 128 letters and digits)"
    fi
    if [[ -n "${EMAIL_FROM:-}" && -z "${EMAIL_TO:-}" ]] || [[ -z "${EMAIL_FROM:-}" && -n "${EMAIL_TO:-}" ]]; then
        die "$E_BAD_VALUE" "EMAIL_FROM and EMAIL_TO go together: the SES-verified sender and the addresses to tell"
    fi
    for variable in TEAMS_MINIMUM_SEVERITY PAGERDUTY_MINIMUM_SEVERITY EMAIL_MINIMUM_SEVERITY; do
        severity="${!variable:-}"
        case "$severity" in
            "" | info | low | medium | high | critical) ;;
            *) die "$E_BAD_VALUE" "$variable must be info, low, medium, high or critical, not '$severity'" ;;
        esac
    done
}

# Adds a parameter to PARAMETERS (the parameters file's entries after the first) when its value
# is not empty.
add_parameter() {
    [[ -n "$2" ]] || return 0
    PARAMETERS+="$(printf ',{"ParameterKey":"%s","ParameterValue":%s}' "$1" "$(json_string "$2")")"
}

cmd_create() {
    [[ $# -eq 0 ]] || die "$E_USAGE" "usage: $0 create (the webhook URL comes from SLACK_WEBHOOK_URL or standard input, never the command line)"
    rust_target >/dev/null
    require_dist
    read_webhook
    check_destinations
    ensure_tools
    package_template
    # The parameters go in a private file, not on the aws command line.
    new_temp_file .json
    local parameters="$TEMP_FILE"
    PARAMETERS=""
    add_parameter SlackWebhookRoutes "${SLACK_WEBHOOK_ROUTES:-}"
    add_parameter TeamsWebhookURL "${TEAMS_WEBHOOK_URL:-}"
    add_parameter TeamsMinimumSeverity "${TEAMS_MINIMUM_SEVERITY:-}"
    add_parameter PagerDutyRoutingKey "${PAGERDUTY_ROUTING_KEY:-}"
    add_parameter PagerDutyMinimumSeverity "${PAGERDUTY_MINIMUM_SEVERITY:-}"
    add_parameter EmailFrom "${EMAIL_FROM:-}"
    add_parameter EmailTo "${EMAIL_TO:-}"
    add_parameter EmailMinimumSeverity "${EMAIL_MINIMUM_SEVERITY:-}"
    printf '[{"ParameterKey":"SlackWebhookURL","ParameterValue":%s},{"ParameterKey":"CloudTrailCloudWatchLogsGroupName","ParameterValue":""},{"ParameterKey":"Architecture","ParameterValue":%s}%s]\n' \
        "$(json_string "$WEBHOOK")" "$(json_string "$ARCH")" "$PARAMETERS" >"$parameters"
    echo "Creating stack $STACK_NAME ..."
    # No CloudTrail subscription for a development stack, as the original's create.
    aws_cli cloudformation create-stack --stack-name "$STACK_NAME" --template-body "file://$PACKAGED" \
        --capabilities CAPABILITY_IAM --parameters "file://$parameters" >/dev/null
    if ! aws_cli cloudformation wait stack-create-complete --stack-name "$STACK_NAME"; then
        print_stack_errors
        exit "$E_FAILED"
    fi
    aws_cli cloudformation describe-stacks --stack-name "$STACK_NAME" \
        --query "Stacks[0].Outputs[].[OutputKey,OutputValue]" --output table
}

cmd_deploy() {
    rust_target >/dev/null
    require_dist
    ensure_tools
    package_template
    echo "Deploying stack $STACK_NAME ..."
    if ! aws_cli cloudformation deploy --template-file "$PACKAGED" --stack-name "$STACK_NAME" \
        --capabilities CAPABILITY_IAM --no-fail-on-empty-changeset \
        --parameter-overrides "Architecture=$ARCH" "$@"; then
        print_stack_errors
        exit "$E_FAILED"
    fi
}

# Percent-encodes everything but unreserved characters (RFC 3986).
urlencode() {
    local text="$1" encoded="" char i
    local LC_ALL=C
    for ((i = 0; i < ${#text}; i++)); do
        char="${text:i:1}"
        case "$char" in
            [A-Za-z0-9.~_-]) encoded+="$char" ;;
            *) encoded+="$(printf '%%%02X' "'$char")" ;;
        esac
    done
    echo "$encoded"
}

cmd_package() {
    [[ $# -eq 0 ]] || die "$E_USAGE" "usage: $0 package"
    require_dist
    ensure_tools
    package_template
    local key url r
    key="cloudformation/$(date -u +%Y%m%d-%H%M%S).yaml"
    aws_cli s3 cp "$PACKAGED" "s3://$BUILD_ARTIFACT_BUCKET/$key" >/dev/null
    r="$(region)"
    if [[ -n "${AWS_ENDPOINT_URL:-}" ]]; then
        url="${AWS_ENDPOINT_URL%/}/$BUILD_ARTIFACT_BUCKET/$key"
    else
        url="https://$BUILD_ARTIFACT_BUCKET.s3.$r.amazonaws.com/$key"
    fi
    # member.yaml, which the stack's StackSets deploy to every watched account and region.
    local member_key="cloudformation/member-${key#cloudformation/}" member_url
    aws_cli s3 cp "$ROOT/$MEMBER_TEMPLATE" "s3://$BUILD_ARTIFACT_BUCKET/$member_key" >/dev/null
    member_url="${url%"$key"}$member_key"
    echo "The packaged template ($ARCH) is at:"
    echo "  $url"
    echo "and member.yaml (MemberTemplateURL: every watched region and account) at:"
    echo "  $member_url"
    echo "Launch it in one click (in $r, the region of the bucket holding the functions' code):"
    echo "  https://console.aws.amazon.com/cloudformation/home?region=$r#/stacks/quickcreate?stackName=$(urlencode "$STACK_NAME")&templateURL=$(urlencode "$url")&param_MemberTemplateURL=$(urlencode "$member_url")"
}

# The organisation's management account, which StackSets never deploy to: member.yaml in each
# watched region, run with the management account's credentials.
cmd_org_management() {
    [[ $# -eq 6 ]] || die "$E_USAGE" "usage: $0 org-management <central event bus ARN> <central stack name> <responder external ID> <responder role ARN | none> <Alert | Revoke | Off> <organization ID | none> (the central stack's ManagementAccountCommand output)"
    local bus="$1" central="$2" external_id="$3" responder="${4#none}" mode="$5" organization="${6#none}" account region r
    [[ "$mode" =~ ^(Alert|Revoke|Off)$ ]] || die "$E_BAD_VALUE" "the response mode must be Alert, Revoke or Off, not '$mode'"
    [[ "$bus" =~ ^arn:aws[a-z-]*:events:([a-z0-9-]+):([0-9]{12}):event-bus/ ]] ||
        die "$E_BAD_VALUE" "'$bus' is no event bus ARN"
    region="${BASH_REMATCH[1]}" account="${BASH_REMATCH[2]}"
    ensure_tools
    for r in ${WATCHED_REGIONS//,/ }; do
        echo "== member.yaml in $r"
        aws_cli cloudformation deploy --region "$r" --stack-name "$central-member" \
            --template-file "$ROOT/$MEMBER_TEMPLATE" --capabilities CAPABILITY_NAMED_IAM \
            --no-fail-on-empty-changeset --parameter-overrides \
            "CentralEventBusArn=$bus" "CentralAccountId=$account" "CentralRegion=$region" \
            "CentralStackName=$central" "Deployment=CentralAccount" "ResponderExternalId=$external_id" \
            "ResponderRoleArn=$responder" "OpenSecurityGroupResponse=$mode" "OrganizationId=$organization"
    done
}

cmd_invoke() {
    [[ $# -eq 2 ]] || die "$E_USAGE" "usage: $0 invoke <function> <json file>"
    local fn="$1" json="$2" name
    require_function "$fn"
    [[ -f "$json" ]] || die "$E_NO_FILE" "$json does not exist"
    ensure_tools
    name="$(stack_output "$(logical_prefix "$fn")FunctionName")"
    new_temp_file .json
    local answer="$TEMP_FILE" function_error
    function_error="$(aws_cli lambda invoke --function-name "$name" --payload "fileb://$json" \
        --query FunctionError --output text "$answer")"
    cat "$answer"
    echo
    [[ "$function_error" == None ]] || die "$E_FAILED" "$fn failed ($function_error); its answer is above"
}

cmd_redrive() {
    [[ $# -eq 1 ]] || die "$E_USAGE" "usage: $0 redrive <function>"
    local fn="$1" prefix queue name
    require_function "$fn"
    ensure_tools
    prefix="$(logical_prefix "$fn")"
    queue="$(aws_cli cloudformation describe-stacks --stack-name "$STACK_NAME" \
        --query "Stacks[0].Outputs[?OutputKey=='${prefix}FailureQueueUrl'].OutputValue | [0]" --output text)"
    [[ -n "$queue" && "$queue" != None ]] || die "$E_BAD_VALUE" "$fn has no failure queue in stack $STACK_NAME"
    name="$(stack_output "${prefix}FunctionName")"
    "$VENV/bin/python" "$ROOT/infrastructure/redrive.py" --queue-url "$queue" --function-name "$name"
}

cmd_upload() {
    [[ $# -eq 1 ]] || die "$E_USAGE" "usage: $0 upload <function>"
    local fn="$1" name
    require_function "$fn"
    cmd_build "$fn"
    name="$(stack_output "$(logical_prefix "$fn")FunctionName")"
    aws_cli lambda update-function-code --function-name "$name" --zip-file "fileb://dist/$fn/$fn.zip" \
        --query "{FunctionName: FunctionName, CodeSize: CodeSize, Architectures: Architectures}" --output json
}

cmd_delete() {
    [[ $# -eq 0 ]] || die "$E_USAGE" "usage: $0 delete"
    ensure_tools
    aws_cli cloudformation delete-stack --stack-name "$STACK_NAME"
    if ! aws_cli cloudformation wait stack-delete-complete --stack-name "$STACK_NAME"; then
        print_stack_errors
        exit "$E_FAILED"
    fi
    echo "Deleted stack $STACK_NAME"
}

cmd_local() {
    local usage="usage: $0 local [--all-destinations] [event.json | --flood [DENIALS] | --respond | --org]"
    local input=(--event "$DEFAULT_EVENT") others=() args=() arg
    for arg in "$@"; do
        if [[ "$arg" == --all-destinations ]]; then
            others=(--all-destinations)
        else
            args+=("$arg")
        fi
    done
    set -- "${args[@]}"
    case "${1:-}" in
        "") ;;
        --respond)
            [[ $# -eq 1 ]] || die "$E_USAGE" "$usage"
            input=(--respond)
            ;;
        --org)
            [[ $# -eq 1 ]] || die "$E_USAGE" "$usage"
            input=(--org)
            ;;
        --flood)
            [[ $# -le 2 ]] || die "$E_USAGE" "$usage"
            [[ "${2:-1000}" =~ ^[1-9][0-9]{0,5}$ ]] || die "$E_BAD_VALUE" "--flood takes a number of denials (1 to 999999), not '$2'"
            input=(--flood "${2:-1000}")
            ;;
        *)
            [[ $# -eq 1 ]] || die "$E_USAGE" "$usage"
            [[ -f "$1" ]] || die "$E_NO_FILE" "$1 does not exist"
            input=(--event "$1")
            ;;
    esac
    if [[ -n "${SLACK_WEBHOOK_URL:-}" && "$SLACK_WEBHOOK_URL" != https://?* ]]; then
        die "$E_BAD_VALUE" "SLACK_WEBHOOK_URL must start with https://"
    fi
    need_command cargo "https://rustup.rs"
    ensure_tools
    echo "== Building the functions and the local world (test-world)"
    local packages=(-p test-world) fn
    for fn in "${FUNCTIONS[@]}"; do packages+=(-p "$fn"); done
    cargo build --quiet "${packages[@]}"
    local bin="${CARGO_TARGET_DIR:-$ROOT/target}/debug"
    "$bin/test-world" local "${input[@]}" "${others[@]}" --bin-dir "$bin"
}

# --- test: everything CI runs ---

# Runs one step of the test, timing it; a failed step is recorded and the next steps still run,
# so one run reports every failure. cargo's and the tests' own counts are summed at the end.
TEST_LOG=""
FAILED_STEPS=()
run_step() {
    local name="$1" started=$SECONDS status=0
    shift
    echo
    echo "== $name"
    "$@" 2>&1 | tee -a "$TEST_LOG" || status=$?
    if [[ $status -eq 0 ]]; then
        echo "-- $name: done in $((SECONDS - started)) s"
    else
        echo "-- $name: FAILED (exit $status) in $((SECONDS - started)) s"
        FAILED_STEPS+=("$name")
    fi
}

cmd_test() {
    [[ $# -eq 0 ]] || die "$E_USAGE" "usage: $0 test"
    need_command cargo "https://rustup.rs"
    need_command python3 "Python 3.9 or later"
    local started=$SECONDS scripts=() tools_log tools_pid
    new_temp_file .log
    TEST_LOG="$TEMP_FILE"
    new_temp_file .log
    tools_log="$TEMP_FILE"
    # The Python tools install (when requirements.txt is new to .venv/) while Rust compiles: the
    # Rust steps need none of them.
    install_tools >"$tools_log" 2>&1 &
    tools_pid=$!
    PIDS+=("$tools_pid")
    mapfile -t scripts < <(git ls-files --cached --others --exclude-standard -- '*.sh' .ci/run | sort -u)
    run_step "cargo fmt --check" cargo fmt --all --check
    run_step "cargo clippy" cargo clippy --workspace --all-targets --features bench/criterion -- -D warnings
    run_step "cargo test: build" cargo test --workspace --no-run
    wait_for "$tools_pid"
    cat "$tools_log"
    [[ $WAITED -eq 0 ]] || die "$E_NO_TOOL" "the Python tools did not install (exit $WAITED); see above"
    export PATH="$VENV/bin:$PATH"
    # The stack test deploys the functions' debug binaries, built once above. It runs beside the
    # checks and the Python tests (each a process of its own on a core of its own), and is done
    # before the Rust tests start: beside it, their floods' pacing would measure the machine's
    # load, not the code. Its output is shown when it ends.
    local stack_log stack_pid stack_started=$SECONDS
    new_temp_file .log
    stack_log="$TEMP_FILE"
    tests/stack_test.sh >"$stack_log" 2>&1 &
    stack_pid=$!
    PIDS+=("$stack_pid")
    run_step "shellcheck ${scripts[*]}" shellcheck "${scripts[@]}"
    run_step "cfn-lint" cfn-lint -- "$TEMPLATE" "$MEMBER_TEMPLATE"
    run_step "checkov" checkov --config-file infrastructure/.checkov.yaml -f "$TEMPLATE" -f "$MEMBER_TEMPLATE"
    run_step "template, rule, filter and redrive tests (python unittest)" python -m unittest discover -s tests -p '*_test.py' -v
    wait_for "$stack_pid"
    echo
    echo "== stack test: dev.sh against moto (beside the steps above)"
    tee -a "$TEST_LOG" <"$stack_log"
    if [[ $WAITED -eq 0 ]]; then
        echo "-- stack test: dev.sh against moto: done in $((SECONDS - stack_started)) s"
    else
        echo "-- stack test: dev.sh against moto: FAILED (exit $WAITED) in $((SECONDS - stack_started)) s"
        FAILED_STEPS+=("stack test: dev.sh against moto")
    fi
    run_step "cargo test" cargo test --workspace --no-fail-fast
    summarize_tests "$TEST_LOG" "$((SECONDS - started))"
    [[ ${#FAILED_STEPS[@]} -eq 0 ]] || exit "$E_FAILED"
}

# One closing line for every test that ran: Rust (cargo's "test result" lines), Python
# unittest ("Ran N tests", "FAILED (failures=N, errors=N)") and the stack test ("stack test: N
# passed, N failed"), and the steps that failed.
summarize_tests() {
    local log="$1" seconds="$2" rust_passed rust_failed python python_failed stack_passed stack_failed
    local sum="{ s += \$1 } END { print s + 0 }"
    rust_passed="$(sed -n 's/^test result: [A-Za-z]*\. \([0-9]*\) passed.*/\1/p' "$log" | awk "$sum")"
    rust_failed="$(sed -n 's/^test result: [A-Za-z]*\. [0-9]* passed; \([0-9]*\) failed.*/\1/p' "$log" | awk "$sum")"
    python="$(sed -n 's/^Ran \([0-9]*\) tests\{0,1\} in.*/\1/p' "$log" | awk "$sum")"
    python_failed="$(sed -n 's/^FAILED (\(.*\))$/\1/p' "$log" | tr ',' '\n' | awk -F= '$1 ~ /^ *(failures|errors)$/ { s += $2 } END { print s + 0 }')"
    stack_passed="$(sed -n 's/^stack test: \([0-9]*\) passed.*/\1/p' "$log" | awk "$sum")"
    stack_failed="$(sed -n 's/^stack test: [0-9]* passed, \([0-9]*\) failed.*/\1/p' "$log" | awk "$sum")"
    local passed=$((rust_passed + python - python_failed + stack_passed))
    local failed=$((rust_failed + python_failed + stack_failed))
    echo
    if [[ ${#FAILED_STEPS[@]} -eq 0 ]]; then
        echo "== $passed tests passed, $failed failed ($rust_passed Rust, $((python - python_failed)) template, rule, filter and redrive, $stack_passed stack test) and fmt, shellcheck, cfn-lint, checkov and clippy clean, in $seconds s"
    else
        local steps
        steps="$(printf '%s; ' "${FAILED_STEPS[@]}")"
        echo "== $passed tests passed, $failed failed ($rust_failed Rust, $python_failed template, rule, filter and redrive, $stack_failed stack test); failed steps: ${steps%; }; in $seconds s"
    fi
}

# --- release: what anyone can install in any region, and rebuild to the same bytes ---

# The Rust toolchain of a release (the first line of release/toolchain that is not a comment).
RELEASE_TOOLCHAIN_FILE="release/toolchain"
# Where the release's installable template is published (CloudFormation reads a quick-create
# link's template from S3): <TEMPLATE_BASE_URL>/<version>/cloudformation.yaml.
TEMPLATE_BASE_URL="${TEMPLATE_BASE_URL:-https://activity-aware-ids-templates.s3.amazonaws.com}"

# Builds the functions for arm64 and x86_64 with the pinned toolchain and linker, zips each the
# same way every time, makes the installable template (infrastructure/release.py) and
# SHA256SUMS, and prints the quick-create links: dist/release/<version>/. The same commit gives
# the same bytes from any clone, path or CARGO_TARGET_DIR: the paths the binaries would carry
# are remapped, the profile is Cargo.toml's release profile alone and SOURCE_DATE_EPOCH is the
# commit's time. Two fat-LTO builds: about half an hour on 2 cores from an empty target/.
cmd_release() {
    [[ $# -eq 0 ]] || die "$E_USAGE" "usage: $0 release"
    need_command cargo "https://rustup.rs"
    need_command rustc "https://rustup.rs"
    need_command git
    ensure_tools
    local python="$VENV/bin/python" release_py="$ROOT/infrastructure/release.py"
    local version pinned actual zig zig_pinned
    version="$("$python" "$release_py" version)" || die "$E_BAD_VALUE" "Cargo.toml needs [workspace.package] version"
    pinned="$(grep -v '^[[:space:]]*#' "$RELEASE_TOOLCHAIN_FILE" | tr -d '[:space:]')"
    actual="$(rustc --version | awk '{print $2}')"
    [[ -n "$pinned" ]] || die "$E_NO_FILE" "$RELEASE_TOOLCHAIN_FILE names no toolchain"
    if [[ "$actual" != "$pinned" ]]; then
        die "$E_NO_TOOL" "a release is built with Rust $pinned ($RELEASE_TOOLCHAIN_FILE), not $actual: rustup toolchain install $pinned --profile minimal --target aarch64-unknown-linux-gnu,x86_64-unknown-linux-gnu, then RUSTUP_TOOLCHAIN=$pinned ./dev.sh release"
    fi
    # The linker: zig from the pinned ziglang package, never another zig on PATH.
    zig_pinned="$(sed -n 's/^ziglang==\([^ ]*\).*/\1/p' "$REQUIREMENTS")"
    zig="$("$python" -m ziglang version)" || die "$E_NO_TOOL" "the ziglang package is not installed in .venv"
    [[ "$zig" == "$zig_pinned" ]] || die "$E_NO_TOOL" "zig is $zig, requirements.txt pins $zig_pinned: remove .venv and run again"
    export CARGO_ZIGBUILD_PYTHON_PATH="$python"
    unset CARGO_ZIGBUILD_ZIG_PATH CARGO_ZIGBUILD_ZIG_COMMAND CARGO_ZIGBUILD_ZIG_COMMAND_ARGS

    # Nothing from this shell changes what is built: only Cargo.toml's release profile and the
    # flags below.
    local variable
    while IFS= read -r variable; do
        unset "$variable"
    done < <(compgen -e | grep -E '^(CARGO_PROFILE_|CARGO_ENCODED_RUSTFLAGS$|CARGO_BUILD_RUSTFLAGS$|RUSTC_WRAPPER$|RUSTC_WORKSPACE_WRAPPER$|CARGO_INCREMENTAL$|CARGO_TARGET_[A-Z0-9_]+_RUSTFLAGS$)')
    local root target_dir cargo_home path
    root="$(pwd -P)"
    target_dir="${CARGO_TARGET_DIR:-$root/target}"
    mkdir -p "$target_dir"
    target_dir="$(cd "$target_dir" && pwd -P)"
    cargo_home="${CARGO_HOME:-$HOME/.cargo}"
    [[ -d "$cargo_home" ]] && cargo_home="$(cd "$cargo_home" && pwd -P)"
    for path in "$root" "$target_dir" "$cargo_home"; do
        [[ "$path" != *[[:space:]]* ]] || die "$E_BAD_VALUE" "the release build needs paths without spaces (RUSTFLAGS cannot quote them): '$path'"
    done
    # The last prefix that matches wins: the target directory, then the checkout, then Cargo's
    # home (registry sources) become fixed names. cargo lambda adds its -C target-cpu.
    export RUSTFLAGS="--remap-path-prefix=$cargo_home=/cargo --remap-path-prefix=$root=/build --remap-path-prefix=$target_dir=/build/target"
    SOURCE_DATE_EPOCH="$(git log -1 --format=%ct)" || die "$E_FAILED" "not a git checkout: a release is built from a commit"
    export SOURCE_DATE_EPOCH
    if [[ -n "$(git status --porcelain --untracked-files=no)" ]]; then
        echo "note: this checkout has uncommitted changes: this release is of the working tree, not of commit $(git rev-parse --short HEAD)" >&2
    fi

    local out="dist/release/$version" arch target flag fn lambda_dir bins=()
    for fn in "${FUNCTIONS[@]}"; do bins+=(--bin "$fn"); done
    rm -rf "$out"
    mkdir -p "$out"
    for arch in arm64 x86_64; do
        target="$(ARCH=$arch rust_target)"
        [[ "$arch" == arm64 ]] && flag=--arm64 || flag=--x86-64
        if command -v rustup >/dev/null 2>&1 && ! rustup target list --installed | grep -qx "$target"; then
            rustup target add "$target"
        fi
        echo "== Release build, $arch (Rust $actual, zig $zig)"
        lambda_dir="$target_dir/lambda-release/$arch"
        rm -rf "$lambda_dir"
        cargo lambda build --release --locked "$flag" --lambda-dir "$lambda_dir" "${bins[@]}"
        for fn in "${FUNCTIONS[@]}"; do
            "$python" "$release_py" zip --binary "$lambda_dir/$fn/bootstrap" --out "$out/$fn-$arch.zip"
        done
    done

    echo "== The installable template"
    "$python" "$release_py" installable-template --zips "$out" --out "$out/cloudformation.yaml" --version "$version"
    # The member accounts' template, when there is one: it deploys no function of its own, so it
    # installs as it is.
    if [[ -f infrastructure/member.yaml ]]; then
        if grep -q 'Type: AWS::Lambda::Function' infrastructure/member.yaml; then
            "$python" "$release_py" installable-template --template infrastructure/member.yaml --zips "$out" \
                --out "$out/member.yaml" --version "$version"
        else
            cp infrastructure/member.yaml "$out/member.yaml"
        fi
    fi
    local template_url="${TEMPLATE_BASE_URL%/}/$version/cloudformation.yaml"
    echo
    echo "Install release $version in one click (the template published at $template_url):"
    "$python" "$release_py" quick-install --version "$version" --template-url "$template_url" --out "$out/QUICK-INSTALL.md"
    "$python" "$release_py" sums "$out" >/dev/null
    echo
    echo "Release $version in $out/ (check with: cd $out && sha256sum -c SHA256SUMS):"
    cat "$out/SHA256SUMS"
}

# --- bench: the README's Performance table ---

# Builds what it measures (the functions with the tuned release profile, their arm64 and x86_64
# zips, criterion's decode benchmark), then runs crates/bench against moto and an HTTPS Slack
# stand-in on 127.0.0.1. It builds the dependency tree three times (host, aarch64, x86_64):
# well over 15 minutes on 2 cores from an empty target/. BENCH_COLD_RUNS (15),
# BENCH_INVOKE_RUNS (5) and BENCH_PER_RECORD_RUNS (3) set the repetitions; BENCH_SKIP_ZIPS=1
# skips the zips.
cmd_bench() {
    [[ $# -eq 0 ]] || die "$E_USAGE" "usage: $0 bench"
    need_command cargo "https://rustup.rs"
    ensure_tools
    local target_dir="${CARGO_TARGET_DIR:-$ROOT/target}" fn arch target flag
    local out="$target_dir/bench" packages=() bins=() zips=() since
    for fn in "${FUNCTIONS[@]}"; do
        packages+=(-p "$fn")
        bins+=(--bin "$fn")
    done
    echo "== release build for this machine: the functions and the bench"
    # One cargo invocation, so that the fat-LTO links share the two cores.
    cargo build --release "${packages[@]}" -p bench --bins
    if [[ "${BENCH_SKIP_ZIPS:-}" != 1 ]]; then
        for arch in arm64 x86_64; do
            target="$(ARCH=$arch rust_target)"
            [[ "$arch" == arm64 ]] && flag=--arm64 || flag=--x86-64
            if command -v rustup >/dev/null 2>&1 && ! rustup target list --installed | grep -qx "$target"; then
                rustup target add "$target"
            fi
            echo "== Lambda zips, $arch"
            rm -rf "${out:?}/lambda/$arch"
            cargo lambda build --release "$flag" --output-format zip --lambda-dir "$out/lambda/$arch" "${bins[@]}"
            zips+=(--zips "$arch=$out/lambda/$arch")
        done
    fi
    echo "== criterion: decode + transform vs base64 + gunzip on the largest payload"
    since="$(date +%s)"
    cargo bench -p bench --features criterion --bench decode
    echo "== the figures, against moto on 127.0.0.1"
    "$target_dir/release/bench" --bin-dir "$target_dir/release" --criterion-dir "$target_dir/criterion" \
        --criterion-since "$since" --out "$out/results.md" --cold-runs "${BENCH_COLD_RUNS:-15}" \
        --invoke-runs "${BENCH_INVOKE_RUNS:-5}" --per-record-runs "${BENCH_PER_RECORD_RUNS:-3}" "${zips[@]}"
}

# --- fuzz: libFuzzer on the payload decoder, the record mapping, the Message parser, the
# EventBridge source's events and the open-port response's reading of its event ---

cmd_fuzz() {
    [[ $# -le 1 ]] || die "$E_USAGE" "usage: $0 fuzz [seconds per target]"
    local seconds="${1:-60}" target
    [[ "$seconds" =~ ^[1-9][0-9]*$ ]] || die "$E_BAD_VALUE" "seconds must be a whole number, not '$seconds'"
    need_command cargo "https://rustup.rs"
    # Pinned, as every tool the project installs.
    local fuzz_version=0.13.2
    [[ "$(cargo fuzz --version 2>/dev/null)" == "cargo-fuzz $fuzz_version" ]] ||
        cargo install cargo-fuzz --version "$fuzz_version" --locked
    echo "== seeds from the CloudTrail corpus"
    cargo build --quiet -p test-world
    target/debug/test-world fuzz-seeds --out fuzz/corpus
    # cargo fuzz passes nightly-only flags (sanitizers); the stable toolchain takes them with this.
    for target in ${FUZZ_TARGETS:-logs_payload awslogs_data message eventbridge_event responder_event}; do
        echo "== fuzzing $target for ${seconds}s (crashes land in fuzz/artifacts/$target/)"
        (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" "corpus/$target" -- \
            -max_total_time="$seconds" -max_len=65536 -print_final_stats=1)
    done
}

command="${1:-help}"
[[ $# -gt 0 ]] && shift
case "$command" in
    build) cmd_build "$@" ;;
    create) cmd_create "$@" ;;
    deploy) cmd_deploy "$@" ;;
    package) cmd_package "$@" ;;
    org-management) cmd_org_management "$@" ;;
    invoke) cmd_invoke "$@" ;;
    redrive) cmd_redrive "$@" ;;
    upload) cmd_upload "$@" ;;
    delete) cmd_delete "$@" ;;
    local) cmd_local "$@" ;;
    test) cmd_test "$@" ;;
    bench) cmd_bench "$@" ;;
    fuzz) cmd_fuzz "$@" ;;
    release) cmd_release "$@" ;;
    functions) printf '%s\n' "${FUNCTIONS[@]}" ;;
    detections)
        [[ $# -eq 0 ]] || die "$E_USAGE" "usage: $0 detections"
        need_command python3 "Python 3.9 or later"
        python3 "$ROOT/infrastructure/detections.py" --write ;;
    help | -h | --help) usage ;;
    *)
        usage >&2
        die "$E_UNKNOWN" "unknown command '$command'"
        ;;
esac
