//! The table: one row per figure, with the project's target and whether the measurement meets it.

use std::fmt::Write as _;

/// How a measured value compares with its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Miss,
    /// The project sets no target for this figure: reported for comparison only.
    NoTarget,
    /// The measurement could not be made (its input was missing or a step failed).
    NotMeasured,
}

impl Verdict {
    /// `Pass` when `ok`, else `Miss`.
    pub fn of(ok: bool) -> Verdict {
        if ok { Verdict::Pass } else { Verdict::Miss }
    }

    fn label(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Miss => "**miss**",
            Verdict::NoTarget => "—",
            Verdict::NotMeasured => "**not measured**",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Row {
    pub figure: String,
    pub measured: String,
    pub target: String,
    pub verdict: Verdict,
}

impl Row {
    pub fn new(
        figure: impl Into<String>,
        measured: impl Into<String>,
        target: impl Into<String>,
        verdict: Verdict,
    ) -> Row {
        Row {
            figure: figure.into(),
            measured: measured.into(),
            target: target.into(),
            verdict,
        }
    }

    /// A row whose measurement failed: the reason stands where the value would.
    pub fn not_measured(
        figure: impl Into<String>,
        reason: impl Into<String>,
        target: impl Into<String>,
    ) -> Row {
        Row::new(figure, reason, target, Verdict::NotMeasured)
    }
}

/// The markdown table. Cell text is escaped so that a `|` in a reason cannot break a row.
pub fn table(rows: &[Row]) -> String {
    let mut out =
        String::from("| # | Figure | Measured | Target | Result |\n|---|---|---|---|---|\n");
    for (i, row) in rows.iter().enumerate() {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            i + 1,
            cell(&row.figure),
            cell(&row.measured),
            cell(&row.target),
            row.verdict.label()
        );
    }
    out
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_rows_in_order_with_verdicts() {
        let rows = [
            Row::new("Cold start", "4.2 ms", "< 30 ms", Verdict::of(true)),
            Row::new("Zip", "6 MiB", "< 5 MiB", Verdict::of(false)),
            Row::new("RSS, other", "10 MiB", "none", Verdict::NoTarget),
            Row::not_measured("Ratio", "no estimates | missing", "<= 2x"),
        ];
        assert_eq!(
            table(&rows),
            "| # | Figure | Measured | Target | Result |\n\
             |---|---|---|---|---|\n\
             | 1 | Cold start | 4.2 ms | < 30 ms | pass |\n\
             | 2 | Zip | 6 MiB | < 5 MiB | **miss** |\n\
             | 3 | RSS, other | 10 MiB | none | — |\n\
             | 4 | Ratio | no estimates \\| missing | <= 2x | **not measured** |\n"
        );
    }
}
