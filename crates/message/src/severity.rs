//! How much a Message matters: part of the Message contract (the `severity` tag).

use std::fmt;
use std::str::FromStr;

/// How much a Message matters: part of the Message contract (the `severity` tag).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Deserialize, serde::Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 5] = [
        Severity::Info,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    /// The tag's value: `info`, `low`, `medium`, `high`, `critical`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// As a person reads it: `Critical`.
    pub fn label(self) -> &'static str {
        match self {
            Severity::Info => "Info",
            Severity::Low => "Low",
            Severity::Medium => "Medium",
            Severity::High => "High",
            Severity::Critical => "Critical",
        }
    }

    /// GuardDuty's scale: low below 4, medium below 7, high below 9, critical from 9.
    pub fn of_guardduty(severity: f64) -> Severity {
        match severity {
            s if s >= 9.0 => Severity::Critical,
            s if s >= 7.0 => Severity::High,
            s if s >= 4.0 => Severity::Medium,
            _ => Severity::Low,
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a severity (info, low, medium, high or critical)")]
pub struct SeverityError(pub String);

impl FromStr for Severity {
    type Err = SeverityError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Severity::ALL
            .into_iter()
            .find(|severity| severity.as_str().eq_ignore_ascii_case(text.trim()))
            .ok_or_else(|| SeverityError(text.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severities_order_and_read_back() {
        assert!(Severity::Info < Severity::Low && Severity::High < Severity::Critical);
        for severity in Severity::ALL {
            assert_eq!(severity.as_str().parse::<Severity>().unwrap(), severity);
            assert_eq!(severity.label().parse::<Severity>().unwrap(), severity);
        }
        assert!("severe".parse::<Severity>().is_err());
        assert_eq!(Severity::of_guardduty(8.9), Severity::High);
        assert_eq!(Severity::of_guardduty(9.0), Severity::Critical);
        assert_eq!(Severity::of_guardduty(3.9), Severity::Low);
        assert_eq!(Severity::of_guardduty(4.0), Severity::Medium);
    }
}
