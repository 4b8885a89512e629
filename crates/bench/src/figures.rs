//! Each figure of the table, from its measurement: the row with its target and verdict.

use std::path::PathBuf;
use std::time::Duration;

use crate::criterion_results::{self, DECODE_GROUP, Estimate};
use crate::measure;
use crate::options::Options;
use crate::report::{Row, Verdict};
use crate::stats::{describe, duration, mb, median, mib};

pub const COLD_START_TARGET: Duration = Duration::from_millis(30);
const BATCH_SPEEDUP_TARGET: f64 = 10.0;
const DECODE_SLOWDOWN_TARGET: f64 = 2.0;
const SOURCE_RSS_TARGET_BYTES: u64 = 64 * 1024 * 1024;
const ZIP_TARGET_BYTES: u64 = 5 * 1024 * 1024;
pub const BATCH_RECORDS: usize = 1_000;
const FLOOD_POSTS_TARGET: usize = 12;
const DESTINATION_RSS_TARGET_BYTES: u64 = 128 * 1024 * 1024;
/// At most this share of ordinary records that are not denials is posted to Slack, and at most
/// the second at high or critical, in percent.
const NOISE_POSTED_TARGET_PERCENT: f64 = 1.0;
const NOISE_URGENT_TARGET_PERCENT: f64 = 0.1;
/// Of a peer's high and critical rules, at least this share alerted on their own tests.
const RECALL_TARGET_PERCENT: f64 = 90.0;

/// The source only needs an ARN to start; nothing is published during a cold start.
pub fn fake_topic() -> String {
    "arn:aws:sns:us-east-1:123456789012:bench-cold-start".to_owned()
}

pub fn cold_start_row(function: &str, result: Result<Vec<Duration>, String>) -> Row {
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

pub fn batch_row(result: Result<measure::BatchVsPerRecord, String>) -> Row {
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

pub fn decode_row(options: &Options) -> Row {
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
                "no fresh criterion results for {DECODE_GROUP:?} (run cargo bench -p bench --features criterion --bench decode)"
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

pub fn source_rss_row(result: Result<measure::SourcePeak, String>) -> Row {
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

pub fn other_rss_row(figure: &str, result: Result<u64, String>) -> Row {
    let target = "none set (128 MiB functions)";
    match result {
        Ok(bytes) => Row::new(figure, mib(bytes), target, Verdict::NoTarget),
        Err(e) => Row::not_measured(figure, e, target),
    }
}

pub fn zip_rows(functions: &[String], zips: &[(String, PathBuf)]) -> Vec<Row> {
    let target = format!("< {}", mib(ZIP_TARGET_BYTES));
    let mut rows = Vec::new();
    for function in functions {
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
            "no --zips given (./dev.sh bench builds them)",
            target,
        ));
    }
    rows
}

/// The posts a flood became, and whether every Message went out.
pub fn flood_posts_row(result: &Result<measure::Flood, String>) -> Row {
    let target = format!("≤ {FLOOD_POSTS_TARGET} posts, nothing lost");
    let figure = "Flood, a probe of about 1,000 denials by one key (and a few by others) through source, SNS, the SQS buffer and two paced Slack function instances: posts Slack received";
    match result {
        Ok(flood) => Row::new(
            figure,
            format!(
                "**{} posts** for {} denials ({} per 1,000; {} batches, {} refused with 429, Counts add up to {}), all posted {} after the first delivery",
                flood.posts,
                thousands(flood.records),
                flood.posts * 1_000 / flood.records.max(1),
                flood.batches,
                flood.refused,
                thousands(flood.counted),
                duration(flood.drained_after)
            ),
            target,
            Verdict::of(flood.posts <= FLOOD_POSTS_TARGET && flood.nothing_lost()),
        ),
        Err(e) => Row::not_measured(figure, e.clone(), target),
    }
}

/// How long a large flood takes to reach Slack at its rate limit, and whether all of it did.
pub fn flood_drain_row(result: &Result<measure::Flood, String>) -> Row {
    let target = "nothing lost";
    match result {
        Ok(flood) => Row::new(
            format!(
                "Flood, {} denials through the same path to a Slack enforcing 1 post/s (429 + Retry-After): time from the first delivery until the buffer queue is empty",
                thousands(flood.records)
            ),
            format!(
                "**{}**: {} posts ({} refused with 429) from {} batches, Counts add up to {} (the source published them all after {})",
                duration(flood.drained_after),
                flood.posts,
                flood.refused,
                flood.batches,
                thousands(flood.counted),
                duration(flood.published_after)
            ),
            target,
            Verdict::of(flood.nothing_lost()),
        ),
        Err(e) => Row::not_measured("Flood, 10,000 denials: time to drain", e.clone(), target),
    }
}

/// The Slack function's memory on the flood's batches of up to 1,000 Messages.
pub fn flood_rss_row(result: &Result<measure::Flood, String>) -> Row {
    let target = format!(
        "< {} (the function has 256 MiB)",
        mib(DESTINATION_RSS_TARGET_BYTES)
    );
    let figure = "Peak RSS (VmHWM), destination-slack, through the 10,000-denial flood (SQS batches of up to 1,000 Messages)";
    match result {
        Ok(flood) => Row::new(
            figure,
            mib(flood.destination_peak_rss),
            target,
            Verdict::of(flood.destination_peak_rss < DESTINATION_RSS_TARGET_BYTES),
        ),
        Err(e) => Row::not_measured(figure, e.clone(), target),
    }
}

/// `25761` -> `25,761`.
/// The noise figure on the repository's real ordinary activity, and what it posts.
pub fn noise_rows(result: &Result<source_eventbridge::noise::Noise, String>) -> Vec<Row> {
    let figure = "Noise: real ordinary activity (fixtures/noise real records and the dashboards-observability sample) posted to Slack, template defaults, routine changes remembered";
    let urgent_figure = "Noise at high or critical, same records";
    let posted_target = format!("<= {NOISE_POSTED_TARGET_PERCENT}%");
    let urgent_target = format!("<= {NOISE_URGENT_TARGET_PERCENT}%");
    match result {
        Ok(noise) => vec![
            Row::new(
                figure,
                format!(
                    "{} of {} records that are not denials ({:.2}%): {}",
                    noise.posted,
                    thousands(noise.others()),
                    noise.posted_percent(),
                    noise
                        .by_detection
                        .iter()
                        .map(|(detection, count)| format!("{detection} {count}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                posted_target,
                Verdict::of(noise.posted_percent() <= NOISE_POSTED_TARGET_PERCENT),
            ),
            Row::new(
                urgent_figure,
                format!("{} ({:.2}%)", noise.urgent(), noise.urgent_percent()),
                urgent_target,
                Verdict::of(noise.urgent_percent() <= NOISE_URGENT_TARGET_PERCENT),
            ),
        ],
        Err(e) => vec![
            Row::not_measured(figure, e.clone(), posted_target),
            Row::not_measured(urgent_figure, e.clone(), urgent_target),
        ],
    }
}

/// Panther's high and critical CloudTrail rules, judged by their own unit tests.
pub fn recall_row(result: &Result<source_eventbridge::noise::Recall, String>) -> Row {
    let figure = "Recall: Panther's high and critical CloudTrail rules (fixtures/recall/panther) alerted on every unit test they expect to alert";
    let target = format!(">= {RECALL_TARGET_PERCENT}%");
    match result {
        Ok(recall) => {
            let percent = 100.0 * recall.alerted() as f64 / recall.rules.len().max(1) as f64;
            let missed: Vec<&str> = recall
                .rules
                .iter()
                .filter(|(_, (expected, posted, _))| posted < expected)
                .map(|(rule, _)| rule.as_str())
                .collect();
            Row::new(
                figure,
                format!(
                    "{} of {} ({percent:.0}%); missed: {}",
                    recall.alerted(),
                    recall.rules.len(),
                    missed.join(", ")
                ),
                target,
                Verdict::of(percent >= RECALL_TARGET_PERCENT),
            )
        }
        Err(e) => Row::not_measured(figure, e.clone(), target),
    }
}

pub fn thousands(n: usize) -> String {
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
pub fn machine() -> String {
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
    use crate::measure::SOURCE;

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(7), "7");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(25_761), "25,761");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn zip_rows_judge_size_and_report_missing_files() {
        let dir = std::env::temp_dir().join(format!("bench-zip-test-{}", std::process::id()));
        let small = dir.join(SOURCE);
        std::fs::create_dir_all(&small).unwrap();
        std::fs::write(small.join("bootstrap.zip"), [0u8; 1024]).unwrap();
        let functions = [SOURCE, "destination-slack", "kms-encryption"].map(str::to_owned);
        let rows = zip_rows(&functions, &[("arm64".to_owned(), dir.clone())]);
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

    #[test]
    fn noise_rows_judge_both_shares_and_recall_its_share() {
        let noise = |posted: usize, urgent: usize| {
            let mut noise = source_eventbridge::noise::Noise {
                records: 1_000,
                posted,
                ..Default::default()
            };
            noise.by_severity.insert("low".into(), posted - urgent);
            noise.by_severity.insert("high".into(), urgent);
            noise
        };
        let rows = noise_rows(&Ok(noise(10, 1)));
        assert_eq!(
            rows.iter().map(|row| row.verdict).collect::<Vec<_>>(),
            [Verdict::Pass, Verdict::Pass]
        );
        let rows = noise_rows(&Ok(noise(11, 2)));
        assert_eq!(
            rows.iter().map(|row| row.verdict).collect::<Vec<_>>(),
            [Verdict::Miss, Verdict::Miss]
        );
        let mut recall = source_eventbridge::noise::Recall::default();
        for rule in 0..10 {
            let posted = if rule == 0 { 0 } else { 1 };
            recall
                .rules
                .insert(format!("R{rule}"), (1, posted, Vec::new()));
        }
        let row = recall_row(&Ok(recall.clone()));
        assert_eq!(row.verdict, Verdict::Pass);
        assert!(
            row.measured.starts_with("9 of 10 (90%); missed: R0"),
            "{}",
            row.measured
        );
        recall.rules.insert("R10".into(), (1, 0, Vec::new()));
        assert_eq!(recall_row(&Ok(recall)).verdict, Verdict::Miss);
    }
}
