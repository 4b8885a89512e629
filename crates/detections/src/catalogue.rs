//! The catalogue file, compiled with the stack's settings, and which detection an event is.

use crate::Severity;
use crate::pattern::{Pattern, PatternError, substitute};
use crate::refine::{Refine, Refined};
use crate::routine::{Familiar, made_by_code, made_by_code_reason};
use crate::settings::Settings;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::HashMap;

/// The catalogue, as the repository holds it (`crates/detections/catalogue.json`).
pub const CATALOGUE_JSON: &str = include_str!("../catalogue.json");

#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    #[error("the catalogue is not what it must be: {0}")]
    Shape(#[from] serde_json::Error),
    #[error("detection {id}: {error}")]
    Pattern { id: String, error: PatternError },
    #[error("detection {id}: {reason}")]
    Entry { id: String, reason: String },
}

/// A family of detections: one parameter switches it, and its rules are made together.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Family {
    pub name: String,
    /// The template parameter that switches it (`Enabled`/`Disabled`), when one does.
    #[serde(default)]
    pub parameter: Option<String>,
    pub description: String,
    /// The template's condition for its rules, when the template declares the parameter and
    /// the condition itself (a parameter that is not `Enabled`/`Disabled`).
    #[serde(default)]
    pub condition: Option<String>,
    /// Rules the template writes by hand for it, instead of rules made from the catalogue.
    #[serde(default)]
    pub hand_written_rules: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Examples {
    /// Events that must alert as this detection.
    #[serde(default)]
    pub alert: Vec<Value>,
    /// Near misses: events that must not.
    #[serde(default)]
    pub quiet: Vec<Value>,
    /// Failed attempts that must alert as attempts of this (high or critical) detection.
    #[serde(default)]
    pub attempt: Vec<Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct Entry {
    id: String,
    family: String,
    title: String,
    severity: Severity,
    tactic: String,
    why: String,
    noise: String,
    pattern: Value,
    #[serde(default)]
    explain: Option<String>,
    #[serde(default)]
    refine: Option<String>,
    #[serde(default)]
    reads: bool,
    #[serde(default)]
    fallback: bool,
    #[serde(default)]
    examples: Examples,
    #[serde(default)]
    answers: Vec<String>,
    #[serde(default)]
    familiar: Option<Familiar>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct File {
    #[serde(rename = "$comment")]
    _comment: Value,
    example_base: Value,
    families: Vec<Family>,
    detections: Vec<Entry>,
}

/// One detection of the catalogue.
#[derive(Debug, Clone)]
pub struct Detection {
    pub id: String,
    pub family: String,
    pub title: String,
    pub severity: Severity,
    /// The MITRE ATT&CK tactic.
    pub tactic: String,
    pub why: String,
    pub noise: String,
    /// What happened, from the record: `{path}` stands for the values at a path of the
    /// CloudTrail record, `{a|b}` for those of the first path that has any.
    pub explain: Option<String>,
    /// Read-only calls matter to it: its rule receives them.
    pub reads: bool,
    /// Looked for only when no other detection is the event (denials).
    pub fallback: bool,
    /// Its EventBridge pattern as the catalogue writes it, placeholders and all.
    pub pattern: Value,
    pub examples: Examples,
    /// The public rules and techniques it answers: `ATT&CK T1562.008`, `Sigma <id>`,
    /// `Panther <RuleID>`, `Elastic: <rule name>`, `Stratus <technique>`.
    pub answers: Vec<String>,
    /// A routine change: news the first time, then told for the record (see
    /// [`crate::routine`]).
    pub familiar: Option<Familiar>,
    refine: Option<Refine>,
    /// `None` when a placeholder has no value here (no honey bucket, say).
    compiled: Option<Pattern>,
}

/// The detection an event is, and what the source says of it.
#[derive(Debug, Clone)]
pub struct Found<'c> {
    pub detection: &'c Detection,
    pub severity: Severity,
    /// Why it alerted, where a condition finer than a pattern decided (ports, a policy).
    pub reason: Option<String>,
    /// The detection's explanation, read from the record.
    pub what_happened: Option<String>,
    /// Why the change was expected, when its principal is declared: its severity is info.
    pub expected: Option<String>,
    /// The call failed with this error code: an attempt of a high or critical detection,
    /// which nothing changed but which someone made.
    pub attempt: Option<String>,
    /// Why a routine change is told for the record (made by infrastructure as code): its
    /// severity is info.
    pub routine: Option<String>,
    /// What the stack remembers of a routine change, to tell whether it is news (see
    /// [`crate::routine`]); `None` when it is not routine, or already told for the record.
    pub familiar_key: Option<String>,
    drop_expected: bool,
}

impl Found<'_> {
    /// Expected, and the stack drops expected changes instead of posting them as info.
    pub fn dropped(&self) -> bool {
        self.expected.is_some() && self.drop_expected
    }
}

/// A field a detection that matches any event name requires: a cheap test before the record is
/// read whole.
#[derive(Debug, Clone)]
struct Gate {
    path: String,
    values: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Catalogue {
    families: Vec<Family>,
    detections: Vec<Detection>,
    example_base: Value,
    by_event_name: HashMap<String, Vec<usize>>,
    anywhere: Vec<(usize, Vec<Gate>)>,
    settings: Settings,
}

/// The longest detection id (the `detection` attribute's room is sized by it).
pub const MAX_DETECTION_ID_LEN: usize = 64;

impl Catalogue {
    /// The repository's catalogue, compiled with these settings.
    pub fn load(settings: Settings) -> Result<Catalogue, CatalogueError> {
        Catalogue::parse(CATALOGUE_JSON, settings)
    }

    pub fn parse(text: &str, settings: Settings) -> Result<Catalogue, CatalogueError> {
        let file: File = serde_json::from_str(text)?;
        let mut detections = Vec::with_capacity(file.detections.len());
        for entry in file.detections {
            let fail = |reason: String| CatalogueError::Entry {
                id: entry.id.clone(),
                reason,
            };
            // The id is published as a message attribute that subscriptions filter by.
            let id_is_plain = (1..=MAX_DETECTION_ID_LEN).contains(&entry.id.len())
                && entry
                    .id
                    .bytes()
                    .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-');
            if !id_is_plain {
                return Err(fail(format!(
                    "an id is 1 to {MAX_DETECTION_ID_LEN} lowercase letters, digits and hyphens"
                )));
            }
            if !file
                .families
                .iter()
                .any(|family| family.name == entry.family)
            {
                return Err(fail(format!("no family {:?}", entry.family)));
            }
            let refine = entry
                .refine
                .as_deref()
                .map(|name| {
                    Refine::named(name).ok_or_else(|| fail(format!("no refinement {name:?}")))
                })
                .transpose()?;
            // Every pattern must compile as written, whatever the settings.
            let placeholder = |_: &str| Some("x".to_owned());
            let written = substitute(&entry.pattern, &placeholder).map_err(fail)?;
            Pattern::compile(&numbers_for_placeholders(&written)).map_err(|error| {
                CatalogueError::Pattern {
                    id: entry.id.clone(),
                    error,
                }
            })?;
            let resolve = |name: &str| settings.placeholders.get(name).cloned();
            let compiled =
                match substitute(&entry.pattern, &resolve) {
                    Ok(pattern) => Some(Pattern::compile(&pattern).map_err(|error| {
                        CatalogueError::Pattern {
                            id: entry.id.clone(),
                            error,
                        }
                    })?),
                    Err(_unresolved) => None,
                };
            detections.push(Detection {
                id: entry.id,
                family: entry.family,
                title: entry.title,
                severity: entry.severity,
                tactic: entry.tactic,
                why: entry.why,
                noise: entry.noise,
                explain: entry.explain,
                reads: entry.reads,
                fallback: entry.fallback,
                pattern: entry.pattern,
                examples: entry.examples,
                answers: entry.answers,
                familiar: entry.familiar,
                refine,
                compiled,
            });
        }
        let mut by_event_name: HashMap<String, Vec<usize>> = HashMap::new();
        let mut anywhere = Vec::new();
        for (index, detection) in detections.iter().enumerate() {
            if detection.fallback {
                continue;
            }
            match event_names(&detection.pattern) {
                Some(names) => {
                    for name in names {
                        by_event_name.entry(name).or_default().push(index);
                    }
                }
                None => anywhere.push((index, gates(&detection.pattern))),
            }
        }
        Ok(Catalogue {
            families: file.families,
            detections,
            example_base: file.example_base,
            by_event_name,
            anywhere,
            settings,
        })
    }

    pub fn families(&self) -> &[Family] {
        &self.families
    }

    pub fn detections(&self) -> &[Detection] {
        &self.detections
    }

    pub fn detection(&self, id: &str) -> Option<&Detection> {
        self.detections.iter().find(|detection| detection.id == id)
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Whether any detection but a fallback could be the record, from what `field` tells of it
    /// without reading it whole: `field(path)` is `Some(value)` for a path it knows
    /// (`Some(None)` when the record has no such value), `None` for a path it does not.
    pub fn may_match(&self, field: &dyn Fn(&str) -> Option<Option<String>>) -> bool {
        if let Some(Some(name)) = field("eventName")
            && self.by_event_name.contains_key(&name)
        {
            return true;
        }
        self.anywhere.iter().any(|(index, gates)| {
            self.detections[*index].compiled.is_some()
                && gates.iter().all(|gate| match field(&gate.path) {
                    None => true,
                    Some(None) => false,
                    Some(Some(value)) => gate.values.contains(&value),
                })
        })
    }

    /// The most severe detection the event is (an EventBridge event: `source`, `detail-type`,
    /// `detail`), fallbacks aside; ties go to the one the catalogue lists first. A call that
    /// failed and would have been a high or critical detection had it worked is that detection's
    /// attempt (high): a failed `StopLogging` is news too.
    pub fn classify(&self, event: &Value) -> Option<Found<'_>> {
        if let Some(found) = self.classify_as_made(event) {
            return Some(found);
        }
        let detail = event.get("detail")?;
        let code = detail
            .get("errorCode")
            .and_then(Value::as_str)
            .filter(|code| !code.is_empty())?;
        let mut succeeded = event.clone();
        if let Some(Value::Object(detail)) = succeeded.get_mut("detail") {
            detail.remove("errorCode");
            detail.remove("errorMessage");
        }
        let mut found = self.classify_as_made(&succeeded)?;
        if found.detection.fallback || found.detection.severity < Severity::High {
            return None;
        }
        found.attempt = Some(code.to_owned());
        if found.expected.is_none() {
            found.severity = Severity::High;
        }
        Some(found)
    }

    fn classify_as_made(&self, event: &Value) -> Option<Found<'_>> {
        let name = event
            .get("detail")
            .and_then(|detail| detail.get("eventName"))
            .and_then(Value::as_str);
        let named = name
            .and_then(|name| self.by_event_name.get(name))
            .into_iter()
            .flatten()
            .copied();
        let mut candidates: Vec<usize> =
            named.chain(self.anywhere.iter().map(|(i, _)| *i)).collect();
        candidates.sort_unstable();
        candidates.dedup();
        self.best(event, candidates.into_iter())
    }

    /// The fallback detection the event is (a denial), for an event no other detection is.
    pub fn classify_fallback(&self, event: &Value) -> Option<Found<'_>> {
        let fallbacks = (0..self.detections.len()).filter(|&i| self.detections[i].fallback);
        self.best(event, fallbacks)
    }

    /// Every detection whose pattern the event matches, fallbacks and refinements aside: what
    /// the template's rules would send the source.
    pub fn matching(&self, event: &Value) -> Vec<&Detection> {
        self.detections
            .iter()
            .filter(|detection| {
                detection
                    .compiled
                    .as_ref()
                    .is_some_and(|p| p.matches(event))
            })
            .collect()
    }

    /// Whether this one detection takes the event (its pattern, then its finer condition), as
    /// it would be found; expected principals aside.
    pub fn evaluate<'c>(&'c self, detection: &'c Detection, event: &Value) -> Option<Found<'c>> {
        let detail = event.get("detail").unwrap_or(&Value::Null);
        if !detection.compiled.as_ref()?.matches(event) {
            return None;
        }
        let (severity, reason) = match detection
            .refine
            .map(|refine| refine.apply(detail, &self.settings))
        {
            None => (detection.severity, None),
            Some(Refined::NotThis) => return None,
            Some(Refined::Keep { severity, reason }) => {
                (severity.unwrap_or(detection.severity), Some(reason))
            }
        };
        Some(Found {
            detection,
            severity,
            reason,
            what_happened: detection
                .explain
                .as_deref()
                .map(|template| explain(template, detail)),
            expected: None,
            attempt: None,
            routine: None,
            familiar_key: None,
            drop_expected: self.settings.expected.drop,
        })
    }

    /// A detection's pattern with the stack's values, as the template's rule holds it; `None`
    /// when the stack lacks one of them.
    pub fn resolved_pattern(&self, detection: &Detection) -> Option<Value> {
        let resolve = |name: &str| self.settings.placeholders.get(name).cloned();
        substitute(&detection.pattern, &resolve).ok()
    }

    fn best(&self, event: &Value, candidates: impl Iterator<Item = usize>) -> Option<Found<'_>> {
        let detail = event.get("detail").unwrap_or(&Value::Null);
        let mut best: Option<Found<'_>> = None;
        for index in candidates {
            let Some(found) = self.evaluate(&self.detections[index], event) else {
                continue;
            };
            if best
                .as_ref()
                .is_none_or(|best| found.severity > best.severity)
            {
                best = Some(found);
            }
        }
        let mut found = best?;
        // Expected changes: a denial is no change, and stays what it is.
        let own_part = found.detection.refine == Some(Refine::StackPart);
        if !found.detection.fallback
            && let Some(why) = self.settings.expected.why(detail, own_part)
        {
            found.expected = Some(why);
            found.severity = Severity::Info;
        } else if let Some(familiar) = &found.detection.familiar {
            match made_by_code(detail).filter(|_| familiar.code) {
                Some(tool) => {
                    found.routine = Some(made_by_code_reason(tool));
                    found.severity = Severity::Info;
                }
                None => found.familiar_key = familiar.key(&found.detection.id, detail),
            }
        }
        Some(found)
    }

    /// An example of the catalogue as the EventBridge event it stands for: its `detail` laid
    /// over the catalogue's example record (unless it says `"base": false`), its `source` and
    /// `detail-type` as given or as CloudTrail makes them.
    pub fn example_event(&self, example: &Value) -> Value {
        let mut detail = if example.get("base") == Some(&Value::Bool(false)) {
            Value::Object(Map::new())
        } else {
            self.example_base.clone()
        };
        if let Some(overrides) = example.get("detail") {
            merge(&mut detail, overrides);
        }
        let mut event = event_of_record(detail);
        for key in ["source", "detail-type"] {
            if let Some(value) = example.get(key) {
                event[key] = value.clone();
            }
        }
        event
    }
}

/// A number where the written pattern holds a placeholder standing for one (`${...}` in a
/// numeric comparison), so that it compiles.
fn numbers_for_placeholders(pattern: &Value) -> Value {
    match pattern {
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(key, value)| {
                    let value = match (key.as_str(), value) {
                        ("numeric", Value::Array(items)) => Value::Array(
                            items
                                .iter()
                                .map(|item| match item {
                                    Value::String(text) if text == "x" => Value::from(0),
                                    other => other.clone(),
                                })
                                .collect(),
                        ),
                        _ => numbers_for_placeholders(value),
                    };
                    (key.clone(), value)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(numbers_for_placeholders).collect()),
        other => other.clone(),
    }
}

/// The EventBridge event CloudTrail makes of a record: `source` is `aws.` and the first label
/// of its eventSource, `detail-type` follows its eventType.
pub fn event_of_record(record: Value) -> Value {
    let source = record
        .get("eventSource")
        .and_then(Value::as_str)
        .and_then(|source| source.split('.').next())
        .map(|service| format!("aws.{service}"))
        .unwrap_or_default();
    let detail_type = match record.get("eventType").and_then(Value::as_str) {
        Some("AwsConsoleSignIn") => "AWS Console Sign In via CloudTrail",
        Some("AwsServiceEvent") => "AWS Service Event via CloudTrail",
        _ => "AWS API Call via CloudTrail",
    };
    let mut event = Map::new();
    event.insert("source".into(), Value::String(source));
    event.insert("detail-type".into(), Value::String(detail_type.into()));
    event.insert("detail".into(), record);
    Value::Object(event)
}

fn merge(base: &mut Value, overrides: &Value) {
    match (base, overrides) {
        (Value::Object(base), Value::Object(overrides)) => {
            for (key, value) in overrides {
                match base.get_mut(key) {
                    Some(existing) if existing.is_object() && value.is_object() => {
                        merge(existing, value)
                    }
                    _ => {
                        base.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (base, overrides) => *base = overrides.clone(),
    }
}

/// The event names a pattern requires of `detail.eventName`, in every alternative; `None` when
/// some alternative matches any name.
fn event_names(pattern: &Value) -> Option<Vec<String>> {
    let alternatives: Vec<&Value> = match pattern.get("$or").and_then(Value::as_array) {
        Some(branches) => branches.iter().collect(),
        None => vec![pattern],
    };
    let mut names = Vec::new();
    for alternative in alternatives {
        let detail = alternative.get("detail")?;
        let details: Vec<&Value> = match detail.get("$or").and_then(Value::as_array) {
            Some(branches) if detail.get("eventName").is_none() => branches.iter().collect(),
            _ => vec![detail],
        };
        for detail in details {
            let listed = detail.get("eventName")?.as_array()?;
            for name in listed {
                names.push(name.as_str()?.to_owned());
            }
        }
    }
    Some(names)
}

/// The literal values a pattern requires at top-level paths of its detail.
fn gates(pattern: &Value) -> Vec<Gate> {
    let mut gates = Vec::new();
    if let Some(Value::Object(detail)) = pattern.get("detail") {
        collect_gates(detail, "", &mut gates);
    }
    gates
}

fn collect_gates(fields: &Map<String, Value>, prefix: &str, gates: &mut Vec<Gate>) {
    for (key, value) in fields {
        if key == "$or" {
            continue;
        }
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            Value::Object(inner) => collect_gates(inner, &path, gates),
            Value::Array(values) => {
                let literal: Option<Vec<String>> = values
                    .iter()
                    .map(|value| {
                        value
                            .as_str()
                            .filter(|text| !text.contains("${"))
                            .map(str::to_owned)
                    })
                    .collect();
                if let Some(values) = literal {
                    gates.push(Gate { path, values });
                }
            }
            _ => {}
        }
    }
}

/// Values read from a record for an explanation: strings as they are, other values as JSON,
/// each once, at most ten.
pub(crate) fn values_text(detail: &Value, path: &str) -> Option<String> {
    let path: Vec<String> = path.split('.').map(str::to_owned).collect();
    let mut found = Vec::new();
    collect_values(detail, &path, &mut found);
    let mut seen: Vec<String> = Vec::new();
    for value in found {
        let text = match value {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        if !text.is_empty() && !seen.contains(&text) {
            seen.push(text);
        }
    }
    match seen.len() {
        0 => None,
        n if n > 10 => Some(format!("{} and {} more", seen[..10].join(", "), n - 10)),
        _ => Some(seen.join(", ")),
    }
}

fn collect_values<'v>(node: &'v Value, path: &[String], out: &mut Vec<&'v Value>) {
    match (node, path.split_first()) {
        (Value::Array(items), _) => items
            .iter()
            .for_each(|item| collect_values(item, path, out)),
        (Value::Object(fields), Some((key, rest))) => {
            if let Some(value) = fields.get(key) {
                collect_values(value, rest, out);
            }
        }
        (Value::Null, _) | (_, Some(_)) => {}
        (value, None) => out.push(value),
    }
}

/// The explanation with each `{path}` (or `{a|b}`) replaced by the record's values there.
fn explain(template: &str, detail: &Value) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let Some(length) = rest[start..].find('}') else {
            break;
        };
        out.push_str(&rest[..start]);
        let paths = &rest[start + 1..start + length];
        let value = paths
            .split('|')
            .find_map(|path| values_text(detail, path.trim()));
        out.push_str(value.as_deref().unwrap_or("(not recorded)"));
        rest = &rest[start + length + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn explanations_read_the_record() {
        let detail = json!({"requestParameters": {"snapshotId": "snap-1", "add": {"items": [{"userId": "1"}, {"group": "all"}, {"userId": "2"}]}}});
        assert_eq!(
            explain(
                "shared {requestParameters.snapshotId} with {requestParameters.add.items.userId}",
                &detail
            ),
            "shared snap-1 with 1, 2"
        );
        assert_eq!(
            explain(
                "{requestParameters.nothing|requestParameters.add.items.group}",
                &detail
            ),
            "all"
        );
        assert_eq!(
            explain("key {requestParameters.keyId}", &detail),
            "key (not recorded)"
        );
        let many = json!({"names": (0..12).map(|i| format!("n{i}")).collect::<Vec<_>>()});
        assert_eq!(
            explain("{names}", &many),
            "n0, n1, n2, n3, n4, n5, n6, n7, n8, n9 and 2 more"
        );
    }

    #[test]
    fn a_record_becomes_the_event_cloudtrail_makes_of_it() {
        let event = event_of_record(
            json!({"eventSource": "ec2-instance-connect.amazonaws.com", "eventType": "AwsApiCall"}),
        );
        assert_eq!(event["source"], "aws.ec2-instance-connect");
        assert_eq!(event["detail-type"], "AWS API Call via CloudTrail");
        let event = event_of_record(
            json!({"eventSource": "signin.amazonaws.com", "eventType": "AwsConsoleSignIn"}),
        );
        assert_eq!(event["detail-type"], "AWS Console Sign In via CloudTrail");
    }

    #[test]
    fn event_names_and_gates_come_from_the_pattern() {
        let pattern =
            json!({"detail": {"eventSource": ["iam.amazonaws.com"], "eventName": ["A", "B"]}});
        assert_eq!(event_names(&pattern), Some(vec!["A".into(), "B".into()]));
        let either = json!({"$or": [{"detail": {"eventName": ["A"]}}, {"detail": {"$or": [{"eventName": ["B"]}, {"eventName": ["C"]}]}}]});
        assert_eq!(
            event_names(&either),
            Some(vec!["A".into(), "B".into(), "C".into()])
        );
        let root = json!({"detail": {"userIdentity": {"type": ["Root"]}, "eventType": [{"anything-but": "AwsServiceEvent"}]}});
        assert_eq!(event_names(&root), None);
        let gates = gates(&root);
        assert_eq!(gates.len(), 1);
        assert_eq!(
            (gates[0].path.as_str(), gates[0].values.as_slice()),
            ("userIdentity.type", &["Root".to_owned()][..])
        );
    }

    #[test]
    fn an_id_that_cannot_be_an_attribute_value_is_refused() {
        let catalogue = |id: &str| {
            json!({"$comment": "", "example-base": {}, "families": [{"name": "F", "description": "F"}], "detections": [
                {"id": id, "family": "F", "title": "T", "severity": "low", "tactic": "t",
                 "why": "w", "noise": "n", "explain": "e",
                 "pattern": {"detail": {"eventName": ["A"]}}}]})
            .to_string()
        };
        let parsed = |id: &str| Catalogue::parse(&catalogue(id), Settings::default());
        assert!(parsed("a-1").is_ok(), "{:?}", parsed("a-1").err());
        for bad in [
            "",
            "Access-Denied",
            "a b",
            &"a".repeat(MAX_DETECTION_ID_LEN + 1),
        ] {
            assert!(
                matches!(parsed(bad), Err(CatalogueError::Entry { .. })),
                "{bad:?} was taken"
            );
        }
    }
}
