#!/usr/bin/env bash
# Development commands for Activity Aware IDS for AWS. Run `./dev.sh help` for the list.
#
# Every AWS call honours AWS_ENDPOINT_URL, so the whole workflow also runs against a local
# moto server. Tools it needs (cargo-lambda, awscli, moto, cfn-lint, checkov) are installed on
# first use into a project-local virtualenv, .venv/.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"

STACK_NAME="${STACK_NAME:-Activity-Aware-IDS-Dev}"
BUILD_ARTIFACT_BUCKET="${BUILD_ARTIFACT_BUCKET:-activity-aware-ids-aws-dev}"
ARCH="${ARCH:-arm64}"
FUNCTIONS=(source-cloudtrail-cloudwatch-logs destination-slack kms-encryption)
TEMPLATE="infrastructure/cloudformation.yaml"
VENV="$ROOT/.venv"
PYTHON_TOOLS=(cargo-lambda awscli "moto[server]" cfn-lint checkov)

usage() {
    cat <<EOF
usage: $0 <command> [arguments]

  local [event.json]      run the whole pipeline on this machine (no AWS account needed):
                          moto, a Lambda Runtime API, the three functions and an HTTPS Slack
                          stand-in (or your SLACK_WEBHOOK_URL); default event:
                          events/source-cloudtrail-cloudwatch-logs.json
  test                    formatting, lints, unit and integration tests, template checks and
                          the stack test against moto
  bench                   the benchmark table (speed, cold start, memory, zip sizes)
  build [function...]     release build of the functions as Lambda zips in dist/ (ARCH=$ARCH)
  create <webhook_url>    package and create the stack \$STACK_NAME
  deploy [cfn args...]    package and update the stack
  invoke <function> <json file>
                          invoke a deployed function with an event
  upload <function>       build one function and update its code only
  package                 upload the functions and template to \$BUILD_ARTIFACT_BUCKET and print
                          the template URL and a one-click launch link
  delete                  delete the stack

functions: ${FUNCTIONS[*]}
env: STACK_NAME ($STACK_NAME), BUILD_ARTIFACT_BUCKET ($BUILD_ARTIFACT_BUCKET), ARCH (arm64|x86_64),
     AWS_ENDPOINT_URL (send every AWS call there, e.g. a moto server)
EOF
}

die() {
    local code="$1"
    shift
    echo "error: $*" >&2
    exit "$code"
}

# Installs the Python tools into .venv once, and puts .venv/bin first on PATH.
ensure_tools() {
    if [[ ! -x "$VENV/bin/python" ]]; then
        python3 -m venv "$VENV"
    fi
    if [[ ! -f "$VENV/.tools-installed" ]]; then
        echo "Installing ${PYTHON_TOOLS[*]} into .venv ..." >&2
        "$VENV/bin/pip" install --quiet --disable-pip-version-check "${PYTHON_TOOLS[@]}"
        touch "$VENV/.tools-installed"
    fi
    export PATH="$VENV/bin:$PATH"
}

# awscli v1 does not read AWS_ENDPOINT_URL itself.
aws_cli() {
    if [[ -n "${AWS_ENDPOINT_URL:-}" ]]; then
        aws --endpoint-url "$AWS_ENDPOINT_URL" "$@"
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

# destination-slack -> DestinationSlack, the prefix of the function's LogicalResourceId.
logical_prefix() {
    local name="$1" part prefix=""
    local IFS='-'
    for part in $name; do
        prefix+="${part^}"
    done
    echo "$prefix"
}

function_physical_id() {
    local fn="$1" prefix id
    prefix="$(logical_prefix "$fn")"
    id="$(aws_cli cloudformation describe-stack-resources --stack-name "$STACK_NAME" \
        --query "StackResources[?ResourceType=='AWS::Lambda::Function' && starts_with(LogicalResourceId, '$prefix')].PhysicalResourceId" \
        --output text)"
    if [[ -z "$id" || "$id" == "None" ]]; then
        die 1 "no ${prefix}... function in stack $STACK_NAME; is it created (./dev.sh create)?"
    fi
    echo "$id"
}

cargo_lambda_arch_flag() {
    case "$ARCH" in
        arm64) echo "--arm64" ;;
        x86_64) echo "--x86-64" ;;
        *) die 2 "ARCH must be arm64 or x86_64, not '$ARCH'" ;;
    esac
}

cmd_build() {
    local fns=("$@") fn flag
    [[ ${#fns[@]} -eq 0 ]] && fns=("${FUNCTIONS[@]}")
    for fn in "${fns[@]}"; do
        is_function "$fn" || die 2 "'$fn' is not a function (${FUNCTIONS[*]})"
    done
    ensure_tools
    flag="$(cargo_lambda_arch_flag)"
    local bins=()
    for fn in "${fns[@]}"; do bins+=(--bin "$fn"); done
    cargo lambda build --release "$flag" --output-format zip "${bins[@]}"
    for fn in "${fns[@]}"; do
        mkdir -p "dist/$fn"
        cp "target/lambda/$fn/bootstrap.zip" "dist/$fn/$fn.zip"
        echo "dist/$fn/$fn.zip ($ARCH, $(stat -c %s "dist/$fn/$fn.zip") bytes)"
    done
}

require_dist() {
    local fn
    for fn in "${FUNCTIONS[@]}"; do
        [[ -f "dist/$fn/$fn.zip" ]] || die 3 "dist/$fn/$fn.zip is missing; run ./dev.sh build first"
    done
}

ensure_bucket() {
    if ! aws_cli s3api head-bucket --bucket "$BUILD_ARTIFACT_BUCKET" >/dev/null 2>&1; then
        echo "Creating bucket $BUILD_ARTIFACT_BUCKET ..." >&2
        aws_cli s3 mb "s3://$BUILD_ARTIFACT_BUCKET" >/dev/null
    fi
}

# Packages the template and function zips; prints the packaged template's path.
package_template() {
    require_dist
    ensure_bucket
    local packaged
    packaged="$(mktemp -t activity-aware-ids.XXXXXX.yaml)"
    aws_cli cloudformation package --template-file "$TEMPLATE" --s3-bucket "$BUILD_ARTIFACT_BUCKET" \
        --s3-prefix lambdas --output-template-file "$packaged" >/dev/null
    echo "$packaged"
}

print_stack_errors() {
    echo "Recent CloudFormation errors:" >&2
    aws_cli cloudformation describe-stack-events --stack-name "$STACK_NAME" \
        --query "reverse(StackEvents[?ResourceStatus=='CREATE_FAILED'||ResourceStatus=='UPDATE_FAILED'].[ResourceType,LogicalResourceId,ResourceStatusReason])" \
        --output text >&2 || true
}

cmd_create() {
    [[ $# -eq 1 ]] || die 2 "usage: $0 create <webhook_url>"
    local webhook="$1"
    [[ "$webhook" == https://* ]] || die 2 "the Slack webhook URL must start with https://"
    ensure_tools
    local packaged
    packaged="$(package_template)"
    echo "Creating stack $STACK_NAME ..."
    aws_cli cloudformation create-stack --stack-name "$STACK_NAME" --template-body "file://$packaged" \
        --capabilities CAPABILITY_IAM \
        --parameters "ParameterKey=SlackWebhookURL,ParameterValue=$webhook" \
        "ParameterKey=CloudTrailCloudWatchLogsGroupName,ParameterValue=" \
        "ParameterKey=Architecture,ParameterValue=$ARCH" >/dev/null
    rm -f "$packaged"
    if ! aws_cli cloudformation wait stack-create-complete --stack-name "$STACK_NAME"; then
        print_stack_errors
        exit 1
    fi
    aws_cli cloudformation describe-stacks --stack-name "$STACK_NAME" --query "Stacks[0].Outputs" --output table
}

cmd_deploy() {
    ensure_tools
    local packaged
    packaged="$(package_template)"
    echo "Deploying stack $STACK_NAME ..."
    if ! aws_cli cloudformation deploy --template-file "$packaged" --stack-name "$STACK_NAME" \
        --capabilities CAPABILITY_IAM --no-fail-on-empty-changeset \
        --parameter-overrides "Architecture=$ARCH" "$@"; then
        rm -f "$packaged"
        print_stack_errors
        exit 1
    fi
    rm -f "$packaged"
}

cmd_package() {
    ensure_tools
    local packaged key url
    packaged="$(package_template)"
    key="cloudformation/$(date -u +%Y%m%d-%H%M%S).yaml"
    aws_cli s3 cp "$packaged" "s3://$BUILD_ARTIFACT_BUCKET/$key" >/dev/null
    rm -f "$packaged"
    if [[ -n "${AWS_ENDPOINT_URL:-}" ]]; then
        url="${AWS_ENDPOINT_URL%/}/$BUILD_ARTIFACT_BUCKET/$key"
    else
        url="https://$BUILD_ARTIFACT_BUCKET.s3.amazonaws.com/$key"
    fi
    echo "The packaged template is at:"
    echo "  $url"
    echo "Launch it in one click:"
    echo "  https://console.aws.amazon.com/cloudformation/home#/stacks/quickcreate?stackName=Activity-Aware-IDS&templateURL=$url"
}

cmd_invoke() {
    [[ $# -eq 2 ]] || die 2 "usage: $0 invoke <function> <json file>"
    local fn="$1" json="$2" id
    is_function "$fn" || die 2 "'$fn' is not a function (${FUNCTIONS[*]})"
    [[ -f "$json" ]] || die 3 "$json does not exist"
    ensure_tools
    id="$(function_physical_id "$fn")"
    aws_cli lambda invoke --function-name "$id" --payload "fileb://$json" /dev/stdout
}

cmd_upload() {
    [[ $# -eq 1 ]] || die 2 "usage: $0 upload <function>"
    local fn="$1" id
    is_function "$fn" || die 2 "'$fn' is not a function (${FUNCTIONS[*]})"
    cmd_build "$fn"
    id="$(function_physical_id "$fn")"
    aws_cli lambda update-function-code --function-name "$id" --zip-file "fileb://dist/$fn/$fn.zip" \
        --query "{FunctionName: FunctionName, CodeSize: CodeSize, Architectures: Architectures}" --output json
}

cmd_delete() {
    [[ $# -eq 0 ]] || die 2 "usage: $0 delete"
    ensure_tools
    aws_cli cloudformation delete-stack --stack-name "$STACK_NAME"
    if ! aws_cli cloudformation wait stack-delete-complete --stack-name "$STACK_NAME"; then
        print_stack_errors
        exit 1
    fi
    echo "Deleted stack $STACK_NAME"
}

cmd_local() {
    [[ $# -le 1 ]] || die 2 "usage: $0 local [event.json]"
    local event="${1:-events/source-cloudtrail-cloudwatch-logs.json}"
    [[ -f "$event" ]] || die 3 "$event does not exist"
    ensure_tools
    exec "$ROOT/scripts/local.sh" "$event"
}

cmd_test() {
    ensure_tools
    if ! command -v shellcheck >/dev/null 2>&1; then
        die 4 "shellcheck is not installed (apt-get install shellcheck)"
    fi
    echo "== cargo fmt --check"
    cargo fmt --all --check
    echo "== cargo clippy"
    cargo clippy --workspace --all-targets -- -D warnings
    echo "== shellcheck"
    local scripts=()
    mapfile -t scripts < <(git ls-files "*.sh")
    shellcheck dev.sh .ci/run "${scripts[@]}"
    echo "== cfn-lint"
    cfn-lint --ignore-checks W3002 -- "$TEMPLATE"
    echo "== checkov"
    checkov --quiet --compact --skip-download -f "$TEMPLATE" 2>/dev/null
    echo "== stack test (dev.sh build/create/upload/package/delete against moto)"
    scripts/stack_test.sh
    echo "== cargo test"
    cargo test --workspace
}

cmd_bench() {
    ensure_tools
    exec "$ROOT/bench/run.sh" "$@"
}

command="${1:-help}"
[[ $# -gt 0 ]] && shift
case "$command" in
    build) cmd_build "$@" ;;
    create) cmd_create "$@" ;;
    deploy) cmd_deploy "$@" ;;
    package) [[ $# -eq 0 ]] || die 2 "usage: $0 package"; cmd_package ;;
    invoke) cmd_invoke "$@" ;;
    upload) cmd_upload "$@" ;;
    delete) cmd_delete "$@" ;;
    local) cmd_local "$@" ;;
    test) cmd_test "$@" ;;
    bench) cmd_bench "$@" ;;
    help | -h | --help) usage ;;
    *)
        usage >&2
        die 2 "unknown command '$command'"
        ;;
esac
