//! `bench`: measures the figures the project aims for in one run, prints them as a markdown table next to their
//! targets and saves the table (the README's Performance section quotes it).
//!
//! `bench/run.sh` builds what it needs first (release binaries, Lambda zips, the criterion
//! decode benchmark) and then runs this; see `--help` for running it by hand.

mod criterion_results;
mod measure;
mod report;
mod stats;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use criterion_results::{DECODE_GROUP, Estimate};
use measure::{DESTINATION, FUNCTIONS, KMS_ENCRYPTION, SOURCE, World};
use report::{Row, Verdict};
use stats::{describe, duration, mb, median, mib};

const COLD_START_TARGET: Duration = Duration::from_millis(30);
const BATCH_SPEEDUP_TARGET: f64 = 10.0;
const DECODE_SLOWDOWN_TARGET: f64 = 2.0;
const SOURCE_RSS_TARGET_BYTES: u64 = 64 * 1024 * 1024;
const ZIP_TARGET_BYTES: u64 = 5 * 1024 * 1024;
const BATCH_RECORDS: usize = 1_000;

const USAGE: &str = "usage: bench [options]   (bench/run.sh builds everything and runs this)

  --bin-dir DIR            the functions' release binaries (default: target/release)
  --zips ARCH=DIR          Lambda zips of ARCH at DIR/<function>/bootstrap.zip (repeatable)
  --criterion-dir DIR      criterion's output (default: target/criterion)
  --criterion-since SECS   ignore criterion results written before this Unix time
  --out FILE               where to save the table (default: target/bench/results.md)
  --cold-runs N            cold starts per function (default: 15)
  --invoke-runs N          timed invocations of the 1,000-record delivery (default: 5)
  --per-record-runs N      timed passes of one Publish per record (default: 3)";

#[derive(Debug)]
struct Options {
    bin_dir: PathBuf,
    zips: Vec<(String, PathBuf)>,
    criterion_dir: PathBuf,
    criterion_since: Option<SystemTime>,
    out: PathBuf,
    cold_runs: usize,
    invoke_runs: usize,
    per_record_runs: usize,
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Options, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let mut options = Options {
        bin_dir: target.join("release"),
        zips: Vec::new(),
        criterion_dir: target.join("criterion"),
        criterion_since: None,
        out: target.join("bench").join("results.md"),
        cold_runs: 15,
        invoke_runs: 5,
        per_record_runs: 3,
    };
    let mut args = args.into_iter();
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            return Err(USAGE.to_owned());
        }
        let value = args
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n\n{USAGE}"))?;
        let count = |value: &str| {
            value
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("{flag} needs a positive count, not {value:?}"))
        };
        match flag.as_str() {
            "--bin-dir" => options.bin_dir = value.into(),
            "--zips" => {
                let (arch, dir) = value
                    .split_once('=')
                    .ok_or_else(|| format!("--zips needs ARCH=DIR, not {value:?}"))?;
                options.zips.push((arch.to_owned(), dir.into()));
            }
            "--criterion-dir" => options.criterion_dir = value.into(),
            "--criterion-since" => {
                let secs: u64 = value
                    .parse()
                    .map_err(|_| format!("--criterion-since needs Unix seconds, not {value:?}"))?;
                options.criterion_since = Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs));
            }
            "--out" => options.out = value.into(),
            "--cold-runs" => options.cold_runs = count(&value)?,
            "--invoke-runs" => options.invoke_runs = count(&value)?,
            "--per-record-runs" => options.per_record_runs = count(&value)?,
            _ => return Err(format!("unknown option {flag}\n\n{USAGE}")),
        }
    }
    Ok(options)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let options = match parse_args(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    let binary = |function: &str| options.bin_dir.join(function);
    for function in FUNCTIONS {
        if !binary(function).is_file() {
            eprintln!(
                "bench: {} is missing; build it first (cargo build --release -p {function}) or run bench/run.sh",
                binary(function).display()
            );
            std::process::exit(2);
        }
    }

    eprintln!("bench: starting moto and the Slack stand-in ...");
    let world = Arc::new(World::start().await);

    // Cold starts first, while nothing else has warmed or loaded the machine.
    let mut cold_rows = Vec::new();
    for function in FUNCTIONS {
        eprintln!("bench: cold start of {function} x{} ...", options.cold_runs);
        let world = world.clone();
        let bin = binary(function);
        let runs = options.cold_runs;
        let result = run_section(async move {
            measure::cold_starts(&bin, &world.env(function, &fake_topic()), runs).await
        })
        .await;
        cold_rows.push(cold_start_row(function, result));
    }

    eprintln!(
        "bench: {}-record delivery: source binary x{} vs one Publish per record x{} ...",
        thousands(BATCH_RECORDS),
        options.invoke_runs,
        options.per_record_runs
    );
    let batch_row = {
        let world = world.clone();
        let bin = binary(SOURCE);
        let (invoke_runs, per_record_runs) = (options.invoke_runs, options.per_record_runs);
        batch_row(
            run_section(async move {
                measure::batch_vs_per_record(
                    &world,
                    &bin,
                    BATCH_RECORDS,
                    invoke_runs,
                    per_record_runs,
                )
                .await
            })
            .await,
        )
    };

    eprintln!("bench: peak RSS of each function (the source on the largest payload) ...");
    let source_rss_row = {
        let world = world.clone();
        let bin = binary(SOURCE);
        source_rss_row(
            run_section(async move { measure::source_peak_rss(&world, &bin).await }).await,
        )
    };
    let destination_rss_row = {
        let world = world.clone();
        let bin = binary(DESTINATION);
        let result = run_section(async move {
            let message = measure::sample_message()?;
            measure::destination_peak_rss(&world, &bin, message).await
        })
        .await;
        other_rss_row(
            "Peak RSS (VmHWM), destination-slack: one SNS event, KMS decrypt + one Slack post",
            result,
        )
    };
    let kms_rss_row = {
        let world = world.clone();
        let bin = binary(KMS_ENCRYPTION);
        let result =
            run_section(async move { measure::kms_encryption_peak_rss(&world, &bin).await }).await;
        other_rss_row(
            "Peak RSS (VmHWM), kms-encryption: one Create request, KMS Encrypt + answer PUT",
            result,
        )
    };
    drop(world);

    let mut rows = vec![batch_row, decode_row(&options)];
    rows.extend(cold_rows);
    rows.extend([source_rss_row, destination_rss_row, kms_rss_row]);
    rows.extend(zip_rows(&options.zips));

    let text = format!("{}\n{}", machine(), report::table(&rows));
    println!("{text}");
    if let Some(dir) = options.out.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    match std::fs::write(&options.out, &text) {
        Ok(()) => eprintln!("bench: saved to {}", options.out.display()),
        Err(e) => eprintln!("bench: cannot save {}: {e}", options.out.display()),
    }
    if rows.iter().any(|r| r.verdict == Verdict::NotMeasured) {
        std::process::exit(1);
    }
}

/// Runs one measurement as its own task, so that a panic inside test-world (it panics with
/// context when a process or moto misbehaves) costs that row, not the whole table.
async fn run_section<T: Send + 'static>(
    section: impl Future<Output = Result<T, String>> + Send + 'static,
) -> Result<T, String> {
    match tokio::spawn(section).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => Err("failed (panicked; see the log above)".to_owned()),
        Err(e) => Err(format!("failed ({e})")),
    }
}

/// The source only needs an ARN to start; nothing is published during a cold start.
fn fake_topic() -> String {
    "arn:aws:sns:us-east-1:123456789012:bench-cold-start".to_owned()
}

fn cold_start_row(function: &str, result: Result<Vec<Duration>, String>) -> Row {
    let figure = format!("Cold start, {function}: process start to first Runtime API poll");
    let target = format!("< {}", duration(COLD_START_TARGET));
    match result {
        Ok(samples) => match median(&samples) {
            Some(m) => Row::new(
                figure,
                describe(&samples),
                target,
                Verdict::of(m < COLD_START_TARGET),
            ),
            None => Row::not_measured(figure, "no samples", target),
        },
        Err(e) => Row::not_measured(figure, e, target),
    }
}

fn batch_row(result: Result<measure::BatchVsPerRecord, String>) -> Row {
    let figure = format!(
        "Source, {}-record delivery to moto SNS: warm invoke of the binary (PublishBatch, bounded concurrency) vs the same Messages, one awaited Publish each",
        thousands(BATCH_RECORDS)
    );
    let target = format!("≥ {BATCH_SPEEDUP_TARGET:.0}x faster");
    let timings = result.and_then(|t| match (median(&t.invoke), median(&t.per_record)) {
        (Some(invoke), Some(per_record)) => Ok((t, invoke, per_record)),
        _ => Err("no samples".to_owned()),
    });
    match timings {
        Ok((t, invoke, per_record)) => {
            let speedup = per_record.as_secs_f64() / invoke.as_secs_f64();
            Row::new(
                figure,
                format!(
                    "**{speedup:.1}x faster**: invoke {} vs one-by-one {} ({} Messages; the same in sequential PublishBatch calls of 10 from the bench: {})",
                    describe(&t.invoke),
                    describe(&t.per_record),
                    thousands(t.messages),
                    describe(&t.sequential_batches)
                ),
                target,
                Verdict::of(speedup >= BATCH_SPEEDUP_TARGET),
            )
        }
        Err(e) => Row::not_measured(figure, e, target),
    }
}

fn decode_row(options: &Options) -> Row {
    let figure = "Source, largest payload: decode + transform to Messages vs plain base64 + gunzip of the same bytes (criterion median)";
    let target = format!("≤ {DECODE_SLOWDOWN_TARGET:.0}x the time");
    let estimates = criterion_results::read_group(
        &options.criterion_dir,
        DECODE_GROUP,
        options.criterion_since,
    );
    let find = |estimates: &[Estimate], word: &str| {
        estimates
            .iter()
            .find(|e| e.function_id.contains(word))
            .cloned()
    };
    let pair = estimates.and_then(|estimates| {
        match (find(&estimates, "gunzip"), find(&estimates, "transform")) {
            (Some(gunzip), Some(transform)) => Ok((gunzip, transform)),
            _ => Err(format!(
                "no fresh criterion results for {DECODE_GROUP:?} (run cargo bench -p {SOURCE} --bench decode)"
            )),
        }
    });
    match pair {
        Ok((gunzip, transform)) => {
            let slowdown = transform.median.as_secs_f64() / gunzip.median.as_secs_f64();
            let rate = |e: &Estimate| {
                e.bytes_per_second()
                    .map(|r| format!(" ({}/s of decompressed JSON)", mb(r as u64)))
                    .unwrap_or_default()
            };
            Row::new(
                figure,
                format!(
                    "**{slowdown:.2}x the time**: {}{} vs {}{}",
                    duration(transform.median),
                    rate(&transform),
                    duration(gunzip.median),
                    rate(&gunzip)
                ),
                target,
                Verdict::of(slowdown <= DECODE_SLOWDOWN_TARGET),
            )
        }
        Err(e) => Row::not_measured(figure, e, target),
    }
}

fn source_rss_row(result: Result<measure::SourcePeak, String>) -> Row {
    let target = format!("< {}", mib(SOURCE_RSS_TARGET_BYTES));
    match result {
        Ok(peak) => Row::new(
            format!(
                "Peak RSS (VmHWM), source on the largest payload Lambda accepts: {} records, {} event, {} decompressed, {} Messages totalling {}",
                thousands(peak.payload.records),
                mb(peak.payload.event_bytes as u64),
                mb(peak.payload.decompressed_bytes as u64),
                thousands(peak.messages),
                mb(peak.message_bytes as u64)
            ),
            format!(
                "{} (invocation incl. publishing to moto took {})",
                mib(peak.vm_hwm_bytes),
                duration(peak.invoke)
            ),
            target,
            Verdict::of(peak.vm_hwm_bytes < SOURCE_RSS_TARGET_BYTES),
        ),
        Err(e) => Row::not_measured(
            "Peak RSS (VmHWM), source on the largest payload Lambda accepts",
            e,
            target,
        ),
    }
}

fn other_rss_row(figure: &str, result: Result<u64, String>) -> Row {
    let target = "none set (128 MiB functions)";
    match result {
        Ok(bytes) => Row::new(figure, mib(bytes), target, Verdict::NoTarget),
        Err(e) => Row::not_measured(figure, e, target),
    }
}

fn zip_rows(zips: &[(String, PathBuf)]) -> Vec<Row> {
    let target = format!("< {}", mib(ZIP_TARGET_BYTES));
    let mut rows = Vec::new();
    for function in FUNCTIONS {
        for (arch, dir) in zips {
            let figure = format!("Deployment zip, {function}, {arch}");
            let path = dir.join(function).join("bootstrap.zip");
            rows.push(match std::fs::metadata(&path) {
                Ok(meta) => Row::new(
                    figure,
                    format!("{} ({} bytes)", mib(meta.len()), meta.len()),
                    target.clone(),
                    Verdict::of(meta.len() < ZIP_TARGET_BYTES),
                ),
                Err(e) => Row::not_measured(figure, format!("{}: {e}", path.display()), &target),
            });
        }
    }
    if zips.is_empty() {
        rows.push(Row::not_measured(
            "Deployment zips",
            "no --zips given (bench/run.sh builds them)",
            target,
        ));
    }
    rows
}

/// `25761` -> `25,761`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The machine line above the table: timings mean little without it.
fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .and_then(|rest| rest.split_once(':'))
        })
        .map(|(_, m)| m.trim().to_owned())
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "Machine: {cpus} CPUs (nproc), {model}, Linux {}; functions built with the workspace's release profile.\n",
        kernel.trim()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Result<Options, String> {
        parse_args(list.iter().map(|s| s.to_string()))
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(7), "7");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(25_761), "25,761");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn parses_options() {
        let options = args(&[
            "--bin-dir",
            "/b",
            "--zips",
            "arm64=/z/a",
            "--zips",
            "x86_64=/z/x",
            "--criterion-since",
            "100",
            "--cold-runs",
            "3",
        ])
        .unwrap();
        assert_eq!(options.bin_dir, PathBuf::from("/b"));
        assert_eq!(
            options.zips,
            [
                ("arm64".to_owned(), PathBuf::from("/z/a")),
                ("x86_64".to_owned(), PathBuf::from("/z/x"))
            ]
        );
        assert_eq!(
            options.criterion_since,
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(100))
        );
        assert_eq!(options.cold_runs, 3);
        assert_eq!(options.invoke_runs, 5);
    }

    #[test]
    fn refuses_bad_options() {
        assert!(args(&["--cold-runs", "0"]).is_err());
        assert!(args(&["--zips", "arm64"]).is_err());
        assert!(args(&["--bin-dir"]).is_err());
        assert!(args(&["--frobnicate", "1"]).is_err());
    }

    #[test]
    fn zip_rows_judge_size_and_report_missing_files() {
        let dir = std::env::temp_dir().join(format!("bench-zip-test-{}", std::process::id()));
        let small = dir.join(SOURCE);
        std::fs::create_dir_all(&small).unwrap();
        std::fs::write(small.join("bootstrap.zip"), [0u8; 1024]).unwrap();
        let rows = zip_rows(&[("arm64".to_owned(), dir.clone())]);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].verdict, Verdict::Pass);
        assert_eq!(rows[0].measured, "0.00 MiB (1024 bytes)");
        assert_eq!(rows[1].verdict, Verdict::NotMeasured);
        assert_eq!(rows[2].verdict, Verdict::NotMeasured);
    }

    #[test]
    fn batch_row_reports_the_speedup() {
        let row = batch_row(Ok(measure::BatchVsPerRecord {
            messages: 1000,
            invoke: vec![Duration::from_millis(100)],
            per_record: vec![Duration::from_millis(2500)],
            sequential_batches: vec![Duration::from_millis(300)],
        }));
        assert_eq!(row.verdict, Verdict::Pass);
        assert!(
            row.measured.starts_with("**25.0x faster**"),
            "{}",
            row.measured
        );
        let row = batch_row(Ok(measure::BatchVsPerRecord {
            messages: 1000,
            invoke: vec![Duration::from_millis(500)],
            per_record: vec![Duration::from_millis(2500)],
            sequential_batches: vec![],
        }));
        assert_eq!(row.verdict, Verdict::Miss);
    }
}
