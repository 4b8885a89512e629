#!/usr/bin/env bash
# The whole benchmark in one command, from a clean clone: builds what it measures, runs it, and
# prints the table of the figures the project aims for (also saved to target/bench/results.md).
#
#   ./bench/run.sh            (or ./dev.sh bench)
#
# Steps: release build (the workspace's tuned profile) of the three functions for this machine;
# their Lambda zips for arm64 and x86_64 with cargo-lambda; criterion's decode benchmark; then
# the `bench` binary (crates/bench), which runs the release binaries against moto and an HTTPS
# Slack stand-in on 127.0.0.1, reads criterion's results and the zip sizes, and prints the table.
# Three builds of the dependency tree (host, aarch64, x86_64 Lambda targets): ~15-25 minutes
# on 2 cores from a clean target/, a few when it is warm.
# cargo-lambda (with zig) and moto come from PyPI into the project's .venv/ when missing.
#
# Env: BENCH_COLD_RUNS (15), BENCH_INVOKE_RUNS (5), BENCH_PER_RECORD_RUNS (3),
#      BENCH_SKIP_ZIPS=1 (no cargo-lambda builds: the zip rows say "not measured").
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

FUNCTIONS=(source-cloudtrail-cloudwatch-logs destination-slack kms-encryption)
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
OUT="$TARGET_DIR/bench"
VENV="$ROOT/.venv"
STARTED_AT="$(date +%s)"

step() {
    printf '\n== [%3ds] %s\n' "$SECONDS" "$*" >&2
}

# cargo-lambda (brings zig) and moto_server, from the project's virtualenv when they are not
# on PATH already.
ensure_tools() {
    if [[ -x "$VENV/bin/python" ]]; then
        export PATH="$VENV/bin:$PATH"
    fi
    local missing=()
    command -v cargo-lambda >/dev/null || missing+=(cargo-lambda)
    if [[ -z "${MOTO_SERVER:-}" ]] && ! command -v moto_server >/dev/null; then
        missing+=("moto[server]")
    fi
    if [[ ${#missing[@]} -gt 0 ]]; then
        step "installing ${missing[*]} into .venv"
        [[ -x "$VENV/bin/python" ]] || python3 -m venv "$VENV"
        "$VENV/bin/pip" install --quiet --disable-pip-version-check "${missing[@]}"
        export PATH="$VENV/bin:$PATH"
    fi
}

# cargo-lambda cross-compiles with zig but needs the Rust standard library of the target.
ensure_rust_target() {
    local target="$1"
    if ! rustup target list --installed 2>/dev/null | grep -qx "$target"; then
        step "rustup target add $target"
        rustup target add "$target"
    fi
}

package_args=()
bin_args=()
for fn in "${FUNCTIONS[@]}"; do
    package_args+=(-p "$fn")
    bin_args+=(--bin "$fn")
done

ensure_tools

step "release build for this machine: the functions, the bench binary, the decode benchmark"
# One cargo invocation, so that the fat-LTO links of the five binaries share the two cores
# instead of running one after the other; `cargo bench` below finds the decode benchmark built.
cargo build --release "${package_args[@]}" -p bench --bins --bench decode

zip_args=()
if [[ "${BENCH_SKIP_ZIPS:-}" != 1 ]]; then
    for arch in arm64 x86_64; do
        case "$arch" in
            arm64) flag=--arm64 target=aarch64-unknown-linux-gnu ;;
            x86_64) flag=--x86-64 target=x86_64-unknown-linux-gnu ;;
        esac
        ensure_rust_target "$target"
        step "Lambda zips, $arch (cargo lambda build)"
        # Each architecture gets its own directory, so neither build overwrites the other's zips.
        rm -rf "${OUT:?}/lambda/$arch"
        cargo lambda build --release "$flag" --output-format zip \
            --lambda-dir "$OUT/lambda/$arch" "${bin_args[@]}"
        zip_args+=(--zips "$arch=$OUT/lambda/$arch")
    done
fi

step "criterion: decode + transform vs base64 + gunzip on the largest payload"
# Results older than this run are ignored by the bench binary.
criterion_since="$(date +%s)"
cargo bench -p source-cloudtrail-cloudwatch-logs --bench decode

step "the bench binary: figures against moto on 127.0.0.1"
"$TARGET_DIR/release/bench" \
    --bin-dir "$TARGET_DIR/release" \
    --criterion-dir "$TARGET_DIR/criterion" \
    --criterion-since "$criterion_since" \
    --out "$OUT/results.md" \
    --cold-runs "${BENCH_COLD_RUNS:-15}" \
    --invoke-runs "${BENCH_INVOKE_RUNS:-5}" \
    --per-record-runs "${BENCH_PER_RECORD_RUNS:-3}" \
    "${zip_args[@]}"

step "done in $(($(date +%s) - STARTED_AT)) s; table saved to $OUT/results.md"
