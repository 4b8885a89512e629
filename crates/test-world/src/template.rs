//! The stack template is the one list of the functions: each `AWS::Lambda::Function` names its
//! crate in its `Code: ../dist/<crate>/<crate>.zip`. dev.sh, the stack test, the benchmark and
//! the local world all read the list from there. It is also the one home of the Slack
//! function's pace (its `SlackPace` mapping), which the local world plays as the stack does.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// infrastructure/cloudformation.yaml of this workspace, as it was built in.
const TEMPLATE: &str = include_str!("../../../infrastructure/cloudformation.yaml");

/// infrastructure/cloudformation.yaml of this workspace.
pub fn template_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../infrastructure/cloudformation.yaml")
}

/// The function crates the template deploys, in template order, each once (the operations
/// relay runs the Slack function's code).
pub fn functions_in(template: &str) -> Vec<String> {
    let mut functions: Vec<String> = Vec::new();
    for name in template
        .lines()
        .filter_map(|line| line.trim().strip_prefix("Code: ../dist/"))
        .filter_map(|rest| {
            let (name, file) = rest.split_once('/')?;
            (file == format!("{name}.zip")).then(|| name.to_owned())
        })
    {
        if !functions.contains(&name) {
            functions.push(name);
        }
    }
    functions
}

/// The function crates of this workspace's template.
pub fn functions() -> Vec<String> {
    let path = template_path();
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("test-world: cannot read {}: {e}", path.display()));
    functions_in(&text)
}

/// How the stack runs the Slack function: its event source mappings and its pace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlackPace {
    /// The bulk lane mapping's MaximumConcurrency: instances fed at once.
    pub instances: usize,
    pub batch_size: usize,
    /// MaximumBatchingWindowInSeconds.
    pub window: Duration,
    /// SLACK_POST_INTERVAL_MS: each instance posts at most once per interval.
    pub post_interval: Duration,
    pub function_timeout: Duration,
    /// The priority lane's mapping (high and critical Messages).
    pub priority: Lane,
}

/// One lane's event source mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lane {
    pub instances: usize,
    pub batch_size: usize,
    pub window: Duration,
}

/// The value a resource of the template writes on one line after `key: ` (flow JSON, such as
/// a `FilterPolicy` or a `PolicyDocument`).
pub fn resource_line(resource: &str, key: &str) -> String {
    let prefix = format!("{key}: ");
    TEMPLATE
        .lines()
        .skip_while(|line| line.trim_end() != format!("  {resource}:"))
        .skip(1)
        .take_while(|line| line.starts_with("    ") || line.trim().is_empty())
        .find_map(|line| line.trim().strip_prefix(prefix.as_str()))
        .unwrap_or_else(|| panic!("test-world: {resource} has no {key} on one line"))
        .to_owned()
}

/// The subscription filter policies of the two lanes, bulk and priority, as the template
/// writes them (JSON on the `FilterPolicy:` line of each subscription).
pub fn lane_filter_policies() -> (String, String) {
    (
        resource_line("DestinationSlackSubscription", "FilterPolicy"),
        resource_line("DestinationSlackPrioritySubscription", "FilterPolicy"),
    )
}

/// The stack's contained-session policy (its `ContainedSessionsPolicy`), as JSON text.
pub fn contained_sessions_policy_document() -> String {
    resource_line("ContainedSessionsPolicy", "PolicyDocument")
}

/// The `SlackPace` mapping of a template: the `key: value` lines under `SlackPace:` and
/// `EventSourceMapping:`.
pub fn slack_pace_in(template: &str) -> Result<SlackPace, String> {
    let bulk = mapping_entry(template, "SlackPace", "EventSourceMapping")?;
    let number =
        |values: &std::collections::HashMap<String, String>, key: &str| -> Result<u64, String> {
            let text = values
                .get(key)
                .ok_or_else(|| format!("SlackPace has no {key}"))?;
            text.parse()
                .map_err(|_| format!("SlackPace {key} is not a number: {text:?}"))
        };
    let priority = match mapping_entry(template, "SlackPace", "PriorityLane") {
        Ok(lane) => Lane {
            instances: number(&lane, "MaximumConcurrency")? as usize,
            batch_size: number(&lane, "BatchSize")? as usize,
            window: Duration::from_secs(number(&lane, "MaximumBatchingWindowInSeconds")?),
        },
        // A template of one lane: no priority instances.
        Err(_) => Lane {
            instances: 0,
            batch_size: 10,
            window: Duration::ZERO,
        },
    };
    Ok(SlackPace {
        instances: number(&bulk, "MaximumConcurrency")? as usize,
        batch_size: number(&bulk, "BatchSize")? as usize,
        window: Duration::from_secs(number(&bulk, "MaximumBatchingWindowInSeconds")?),
        post_interval: Duration::from_millis(number(&bulk, "PostIntervalMs")?),
        function_timeout: Duration::from_secs(number(&bulk, "FunctionTimeout")?),
        priority,
    })
}

/// The pace of this workspace's template.
pub fn slack_pace() -> SlackPace {
    slack_pace_in(TEMPLATE).unwrap_or_else(|e| panic!("test-world: the template's SlackPace: {e}"))
}

/// How the stack runs one of the other destinations (its `DestinationPace` entry): one event
/// source mapping, and the pace of each instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DestinationPace {
    pub lane: Lane,
    /// `PostIntervalMs`: each instance sends at most once per interval.
    pub post_interval: Duration,
}

/// The `key: value` lines of an entry of a mapping (`DestinationPace`, `Teams`).
fn mapping_entry(
    template: &str,
    mapping: &str,
    entry: &str,
) -> Result<std::collections::HashMap<String, String>, String> {
    let mut lines = template
        .lines()
        .skip_while(|line| line.trim_end() != format!("  {mapping}:"));
    lines.next().ok_or(format!("no {mapping} mapping"))?;
    let mut lines = lines
        .take_while(|line| line.starts_with("    ") || line.trim().is_empty())
        .skip_while(|line| line.trim_end() != format!("    {entry}:"));
    lines.next().ok_or(format!("{mapping} has no {entry}"))?;
    Ok(lines
        .take_while(|line| line.starts_with("      ") || line.trim().is_empty())
        .filter(|line| !line.trim_start().starts_with('#'))
        .filter_map(|line| line.trim().split_once(':'))
        .map(|(key, value)| {
            (
                key.trim().to_owned(),
                value.trim().trim_matches('"').to_owned(),
            )
        })
        .collect())
}

/// The pace of a destination in the template's `DestinationPace` (`Teams`, `PagerDuty`,
/// `Email`).
pub fn destination_pace(entry: &str) -> DestinationPace {
    let values = mapping_entry(TEMPLATE, "DestinationPace", entry)
        .unwrap_or_else(|e| panic!("test-world: the template's DestinationPace: {e}"));
    let number = |key: &str| -> u64 {
        values
            .get(key)
            .and_then(|text| text.parse().ok())
            .unwrap_or_else(|| panic!("test-world: DestinationPace {entry} has no number {key}"))
    };
    DestinationPace {
        lane: Lane {
            instances: number("MaximumConcurrency") as usize,
            batch_size: number("BatchSize") as usize,
            window: Duration::from_secs(number("MaximumBatchingWindowInSeconds")),
        },
        post_interval: Duration::from_millis(number("PostIntervalMs")),
    }
}

/// A parameter's default in the template.
pub fn parameter_default(parameter: &str) -> String {
    TEMPLATE
        .lines()
        .skip_while(|line| line.trim_end() != format!("  {parameter}:"))
        .skip(1)
        .take_while(|line| line.starts_with("    "))
        .find_map(|line| line.trim().strip_prefix("Default: "))
        .map(|value| value.trim_matches('"').to_owned())
        .unwrap_or_else(|| panic!("test-world: the template's {parameter} has no default"))
}

/// The subscription filter policy the template gives a destination for a minimum severity (its
/// `MinimumSeverity` mapping): the severities at or above it, and Messages without one when
/// they count (as medium) at or above it.
pub fn minimum_severity_filter_policy(minimum: &str) -> String {
    let line = TEMPLATE
        .lines()
        .skip_while(|line| line.trim_end() != "  MinimumSeverity:")
        .skip(1)
        .take_while(|line| line.starts_with("    "))
        .find_map(|line| line.trim().strip_prefix(&format!("{minimum}: ")))
        .unwrap_or_else(|| panic!("test-world: MinimumSeverity has no {minimum}"));
    // {AtOrAbove: [high, critical], WithoutSeverity: "No"}
    let severities: Vec<String> = line
        .split_once('[')
        .and_then(|(_, rest)| rest.split_once(']'))
        .map(|(list, _)| list.split(',').map(|s| s.trim().to_owned()).collect())
        .unwrap_or_else(|| panic!("test-world: MinimumSeverity {minimum}: {line}"));
    let at_or_above = serde_json::json!({ "severity": severities });
    if line.contains("WithoutSeverity: \"Yes\"") {
        serde_json::json!({"$or": [{"severity": [{"exists": false}]}, at_or_above]}).to_string()
    } else {
        at_or_above.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slack_pace_is_read_from_the_template() {
        let pace = slack_pace();
        // The arithmetic tests/template_test.py checks, seen from here.
        assert!(pace.instances >= 2 && pace.priority.instances >= 2);
        assert!(
            pace.post_interval
                >= Duration::from_secs(1) * (pace.instances + pace.priority.instances) as u32
        );
        assert!(pace.priority.window <= Duration::from_secs(1) && pace.priority.batch_size <= 10);
        assert!(pace.window >= Duration::from_secs(1) && pace.window <= Duration::from_secs(30));
        let pace = slack_pace_in(
            "Mappings:\n  SlackPace:\n    EventSourceMapping:\n      MaximumConcurrency: 3\n      # a note\n      PostIntervalMs: \"3000\"\n      MaximumBatchingWindowInSeconds: 5\n      BatchSize: 100\n      FunctionTimeout: 30\n\nConditions:\n  X: 1\n",
        )
        .unwrap();
        assert_eq!(
            pace,
            SlackPace {
                instances: 3,
                batch_size: 100,
                window: Duration::from_secs(5),
                post_interval: Duration::from_millis(3000),
                function_timeout: Duration::from_secs(30),
                priority: Lane {
                    instances: 0,
                    batch_size: 10,
                    window: Duration::ZERO,
                },
            }
        );
        let (bulk, priority) = lane_filter_policies();
        assert!(
            bulk.contains("exists") && priority.contains("critical"),
            "{bulk} {priority}"
        );
        assert!(slack_pace_in("Mappings:\n  Other: {}\n").is_err());
    }

    #[test]
    fn the_other_destinations_pace_and_filters_are_read_from_the_template() {
        let teams = destination_pace("Teams");
        // Teams takes 4 requests a second per webhook, PagerDuty 2 events, SES 1 email.
        assert!(teams.post_interval >= Duration::from_millis(250) * teams.lane.instances as u32);
        let pagerduty = destination_pace("PagerDuty");
        assert!(
            pagerduty.post_interval >= Duration::from_millis(500) * pagerduty.lane.instances as u32
        );
        let email = destination_pace("Email");
        assert!(email.post_interval >= Duration::from_secs(1) * email.lane.instances as u32);
        assert_eq!(parameter_default("PagerDutyMinimumSeverity"), "high");
        assert_eq!(
            minimum_severity_filter_policy("high"),
            r#"{"severity":["high","critical"]}"#
        );
        assert_eq!(
            minimum_severity_filter_policy("medium"),
            r#"{"$or":[{"severity":[{"exists":false}]},{"severity":["medium","high","critical"]}]}"#
        );
    }

    #[test]
    fn the_template_lists_every_function_crate() {
        let functions = functions();
        assert!(functions.len() >= 3, "{functions:?}");
        for function in &functions {
            let main = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join(function)
                .join("src/main.rs");
            assert!(main.is_file(), "{function} is not a crate with a binary");
        }
        assert_eq!(
            functions_in("      Code: ../dist/a-b/a-b.zip\n      Code: ../dist/x/y.zip\n"),
            ["a-b"]
        );
    }
}
