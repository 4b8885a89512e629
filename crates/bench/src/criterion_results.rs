//! Figure (2) comes from criterion (`cargo bench --bench decode`), which is better at timing a
//! pure CPU loop than this binary would be; its results are read back from the JSON files it
//! leaves under `target/criterion/<group>/<function>/new/`.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde_json::Value;

/// The benchmark group of `crates/bench/benches/decode.rs`.
pub const DECODE_GROUP: &str = "largest CloudWatch Logs delivery";

/// One criterion benchmark's latest result.
#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    pub function_id: String,
    /// Median time of one iteration.
    pub median: Duration,
    /// Bytes per iteration, when the benchmark declared a throughput.
    pub throughput_bytes: Option<u64>,
}

impl Estimate {
    /// Bytes per second at the median time.
    pub fn bytes_per_second(&self) -> Option<f64> {
        let bytes = self.throughput_bytes? as f64;
        Some(bytes / self.median.as_secs_f64())
    }
}

/// The latest results of every benchmark in `group` under `criterion_dir`, skipping results
/// written before `since` (left over from an earlier run).
pub fn read_group(
    criterion_dir: &Path,
    group: &str,
    since: Option<SystemTime>,
) -> Result<Vec<Estimate>, String> {
    let mut found = Vec::new();
    let mut pending = vec![criterion_dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.file_name().is_some_and(|n| n == "benchmark.json")
                && path
                    .parent()
                    .and_then(Path::file_name)
                    .is_some_and(|n| n == "new")
            {
                found.push(path);
            }
        }
    }
    let mut estimates = Vec::new();
    for benchmark_json in found {
        let benchmark = read_json(&benchmark_json)?;
        if benchmark["group_id"].as_str() != Some(group) {
            continue;
        }
        let estimates_json = benchmark_json.with_file_name("estimates.json");
        if let Some(since) = since {
            let written = std::fs::metadata(&estimates_json)
                .and_then(|m| m.modified())
                .map_err(|e| format!("{}: {e}", estimates_json.display()))?;
            if written < since {
                continue;
            }
        }
        estimates.push(parse(&benchmark, &read_json(&estimates_json)?)?);
    }
    estimates.sort_by(|a, b| a.function_id.cmp(&b.function_id));
    Ok(estimates)
}

fn read_json(path: &PathBuf) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Builds an [`Estimate`] from criterion's `benchmark.json` and `estimates.json`.
fn parse(benchmark: &Value, estimates: &Value) -> Result<Estimate, String> {
    let function_id = benchmark["function_id"]
        .as_str()
        .ok_or("benchmark.json has no function_id")?
        .to_owned();
    let nanos = estimates["median"]["point_estimate"]
        .as_f64()
        .filter(|n| n.is_finite() && *n > 0.0)
        .ok_or_else(|| format!("{function_id}: estimates.json has no median point estimate"))?;
    Ok(Estimate {
        function_id,
        median: Duration::from_secs_f64(nanos / 1e9),
        throughput_bytes: benchmark["throughput"]["Bytes"].as_u64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_median_and_throughput() {
        let benchmark = json!({
            "group_id": DECODE_GROUP,
            "function_id": "base64 + gunzip only",
            "throughput": {"Bytes": 43_916_022u64},
        });
        let estimates = json!({
            "mean": {"point_estimate": 160_000_000.0},
            "median": {"point_estimate": 150_000_000.0},
        });
        let estimate = parse(&benchmark, &estimates).unwrap();
        assert_eq!(estimate.function_id, "base64 + gunzip only");
        assert_eq!(estimate.median, Duration::from_millis(150));
        assert_eq!(estimate.throughput_bytes, Some(43_916_022));
        let rate = estimate.bytes_per_second().unwrap();
        assert!((rate - 43_916_022.0 / 0.15).abs() < 1.0, "{rate}");
    }

    #[test]
    fn refuses_estimates_without_a_median() {
        let benchmark = json!({"group_id": DECODE_GROUP, "function_id": "x"});
        assert!(parse(&benchmark, &json!({"median": {}})).is_err());
        assert!(parse(&json!({}), &json!({"median": {"point_estimate": 1.0}})).is_err());
    }

    #[test]
    fn reads_only_the_group_and_fresh_results() {
        let dir = std::env::temp_dir().join(format!(
            "bench-criterion-test-{}-{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let write = |group: &str, function: &str, median: f64| {
            let new = dir.join(group).join(function).join("new");
            std::fs::create_dir_all(&new).unwrap();
            let benchmark = json!({"group_id": group, "function_id": function});
            std::fs::write(new.join("benchmark.json"), benchmark.to_string()).unwrap();
            let estimates = json!({"median": {"point_estimate": median}});
            std::fs::write(new.join("estimates.json"), estimates.to_string()).unwrap();
            // criterion's previous result, which must be ignored
            let base = dir.join(group).join(function).join("base");
            std::fs::create_dir_all(&base).unwrap();
            std::fs::write(base.join("benchmark.json"), benchmark.to_string()).unwrap();
        };
        write(DECODE_GROUP, "b", 2.0);
        write(DECODE_GROUP, "a", 1.0);
        write("other group", "c", 3.0);

        let estimates = read_group(&dir, DECODE_GROUP, None).unwrap();
        let ids: Vec<_> = estimates.iter().map(|e| e.function_id.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);

        let future = SystemTime::now() + Duration::from_secs(3600);
        assert!(
            read_group(&dir, DECODE_GROUP, Some(future))
                .unwrap()
                .is_empty()
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
