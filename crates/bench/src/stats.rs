//! Summaries of repeated timings and the units the table prints them in.

use std::time::Duration;

/// Median of `samples` (mean of the two middle ones for an even count); `None` when empty.
/// Medians, not means: one run slowed by the other core's load should not move the figure.
pub fn median(samples: &[Duration]) -> Option<Duration> {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2),
    }
}

/// `median 4.21 ms (min 3.90, max 6.02, n=15)`: the spread shows how much to trust the median.
pub fn describe(samples: &[Duration]) -> String {
    let (Some(median), Some(min), Some(max)) =
        (median(samples), samples.iter().min(), samples.iter().max())
    else {
        return "no samples".to_owned();
    };
    format!(
        "median {} (min {}, max {}, n={})",
        duration(median),
        duration(*min),
        duration(*max),
        samples.len()
    )
}

/// A duration with a precision that suits its size.
pub fn duration(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1e3;
    if ms < 10.0 {
        format!("{ms:.2} ms")
    } else if ms < 1_000.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{:.2} s", ms / 1e3)
    }
}

/// Bytes as MiB with two decimals (the unit of the size and memory targets).
pub fn mib(bytes: u64) -> String {
    format!("{:.2} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// Bytes as decimal MB with one decimal, for payload sizes (Lambda's limit is 6 MB).
pub fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[ms(5)]), Some(ms(5)));
        assert_eq!(median(&[ms(9), ms(1), ms(5)]), Some(ms(5)));
        assert_eq!(median(&[ms(4), ms(1), ms(2), ms(100)]), Some(ms(3)));
    }

    #[test]
    fn describe_shows_median_spread_and_count() {
        assert_eq!(
            describe(&[ms(12), ms(3), ms(4)]),
            "median 4.00 ms (min 3.00 ms, max 12.0 ms, n=3)"
        );
        assert_eq!(describe(&[]), "no samples");
    }

    #[test]
    fn units() {
        assert_eq!(duration(Duration::from_micros(4_210)), "4.21 ms");
        assert_eq!(duration(ms(123)), "123.0 ms");
        assert_eq!(duration(ms(4_567)), "4.57 s");
        assert_eq!(mib(5 * 1024 * 1024), "5.00 MiB");
        assert_eq!(mb(6_291_000), "6.3 MB");
    }
}
