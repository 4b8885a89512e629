//! The bench's command line.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

pub const USAGE: &str = "usage: bench [options]   (./dev.sh bench builds everything and runs this)

  --bin-dir DIR            the functions' release binaries (default: target/release)
  --zips ARCH=DIR          Lambda zips of ARCH at DIR/<function>/bootstrap.zip (repeatable)
  --criterion-dir DIR      criterion's output (default: target/criterion)
  --criterion-since SECS   ignore criterion results written before this Unix time
  --out FILE               where to save the table (default: target/bench/results.md)
  --cold-runs N            cold starts per function (default: 15)
  --invoke-runs N          timed invocations of the 1,000-record delivery (default: 5)
  --per-record-runs N      timed passes of one Publish per record (default: 3)";

#[derive(Debug)]
pub struct Options {
    pub bin_dir: PathBuf,
    pub zips: Vec<(String, PathBuf)>,
    pub criterion_dir: PathBuf,
    pub criterion_since: Option<SystemTime>,
    pub out: PathBuf,
    pub cold_runs: usize,
    pub invoke_runs: usize,
    pub per_record_runs: usize,
}

pub fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Options, String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Result<Options, String> {
        parse_args(list.iter().map(|s| s.to_string()))
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
}
