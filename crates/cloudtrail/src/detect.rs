//! Which detection of the catalogue a CloudTrail record is, read once per record: cheaply from
//! the few values the record view holds, and from the whole record only when a detection may
//! be it.

use crate::heartbeat::{Canary, Path};
use crate::record::{CONSOLE_LINK_LABEL, RecordView};
use activity_aware_detections::{
    Catalogue, CatalogueError, Found, Settings, SettingsError, Severity, event_of_record,
};
use activity_aware_message::{DETECTION_TAG, Field, Message, SEVERITY_TAG, Tag};
use serde_json::{Map, Value};
use std::sync::Arc;

/// Severity of a record that no detection is (a filter of your own sent it): someone asked to
/// hear about it.
pub const UNCLASSIFIED_SEVERITY: Severity = Severity::Medium;

/// What a record is, as its Message says it.
#[derive(Debug, Clone, PartialEq)]
pub struct Detected {
    pub severity: Severity,
    /// The detection, when the record is one.
    pub detection: Option<DetectionText>,
    /// The call was denied (a denial of any detection counts for containment).
    pub denied: bool,
    /// The call failed with this code: an attempt of a high or critical detection.
    pub attempt: Option<String>,
    /// A routine change: what the stack remembers of it, to tell whether it is news (see
    /// [`crate::familiar`]).
    pub familiar_key: Option<String>,
}

/// What a Message says of its detection.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectionText {
    pub id: String,
    pub title: String,
    pub tactic: String,
    pub why: String,
    pub what_happened: Option<String>,
    /// Why it alerted, where a condition finer than a pattern decided.
    pub reason: Option<String>,
    /// Why the change was expected, when it was.
    pub expected: Option<String>,
    /// Why a routine change is told for the record, when it is.
    pub routine: Option<String>,
    /// Said in tags only (a denial, a GuardDuty finding): the Message is its own.
    pub tags_only: bool,
    /// Expected, and expected changes are dropped.
    pub dropped: bool,
}

impl Detected {
    pub fn unclassified() -> Detected {
        Detected {
            severity: UNCLASSIFIED_SEVERITY,
            detection: None,
            denied: false,
            attempt: None,
            familiar_key: None,
        }
    }

    pub fn of(found: &Found<'_>) -> Detected {
        let detection = found.detection;
        let (title, reason) = match &found.attempt {
            None => (detection.title.clone(), found.reason.clone()),
            Some(code) => (
                format!("Attempted: {}", detection.title),
                Some(match &found.reason {
                    Some(reason) => format!(
                        "the call failed ({code}): nothing changed, but someone tried; {reason}"
                    ),
                    None => format!("the call failed ({code}): nothing changed, but someone tried"),
                }),
            ),
        };
        Detected {
            severity: found.severity,
            detection: Some(DetectionText {
                id: detection.id.clone(),
                title,
                tactic: detection.tactic.clone(),
                why: detection.why.clone(),
                what_happened: found.what_happened.clone(),
                reason,
                expected: found.expected.clone(),
                routine: found.routine.clone(),
                tags_only: detection.fallback,
                dropped: found.dropped(),
            }),
            denied: false,
            attempt: found.attempt.clone(),
            familiar_key: found.familiar_key.clone(),
        }
    }

    /// Not to be published: an expected change, where the stack drops those.
    pub fn dropped(&self) -> bool {
        self.detection
            .as_ref()
            .is_some_and(|detection| detection.dropped)
    }

    /// The detection, unless it is said in tags only.
    pub fn shown(&self) -> Option<&DetectionText> {
        self.detection
            .as_ref()
            .filter(|detection| !detection.tags_only)
    }

    /// A detection said in tags only, at this severity: a GuardDuty finding, whose Message
    /// already says everything.
    pub fn tagged(id: &str, severity: Severity) -> Detected {
        Detected {
            severity,
            detection: Some(DetectionText {
                id: id.to_owned(),
                title: String::new(),
                tactic: String::new(),
                why: String::new(),
                what_happened: None,
                reason: None,
                expected: None,
                routine: None,
                tags_only: true,
                dropped: false,
            }),
            denied: false,
            attempt: None,
            familiar_key: None,
        }
    }

    /// What the Message says of its detection, after its own fields: what it is, what
    /// happened, why it alerted, why it was expected or is routine, why it matters, its ATT&CK tactic.
    pub fn fields(&self) -> Vec<(&'static str, String)> {
        let Some(detection) = self.shown() else {
            return Vec::new();
        };
        let mut fields = vec![(DETECTION_LABEL, detection.title.clone())];
        for (label, value) in [
            (WHAT_HAPPENED_LABEL, &detection.what_happened),
            (WHY_IT_ALERTED_LABEL, &detection.reason),
            (EXPECTED_LABEL, &detection.expected),
            (ROUTINE_LABEL, &detection.routine),
        ] {
            if let Some(value) = value {
                fields.push((label, value.clone()));
            }
        }
        fields.push((WHY_IT_MATTERS_LABEL, detection.why.clone()));
        fields.push((TACTIC_LABEL, detection.tactic.clone()));
        fields
    }

    /// The severity tag, and the detection's.
    pub fn tags(&self) -> Vec<Tag> {
        let mut tags = vec![Tag {
            key: SEVERITY_TAG.into(),
            value: self.severity.as_str().into(),
        }];
        if let Some(detection) = &self.detection {
            tags.push(Tag {
                key: DETECTION_TAG.into(),
                value: detection.id.clone(),
            });
        }
        tags
    }

    /// A Message made elsewhere (a sign-in's, a finding's) says what this says: its detection's
    /// fields before its console link, its tags after its own.
    pub fn apply_to(&self, message: &mut Message) {
        let at = message
            .fields
            .iter()
            .position(|field| field.key == CONSOLE_LINK_LABEL)
            .unwrap_or(message.fields.len());
        let added = self
            .fields()
            .into_iter()
            .map(|(key, value)| Field::text(key, value));
        message.fields.splice(at..at, added);
        message.tags.extend(self.tags());
    }
}

/// Labels of what a Message says of its detection.
pub const DETECTION_LABEL: &str = "Detection";
pub const WHAT_HAPPENED_LABEL: &str = "What Happened";
pub const WHY_IT_ALERTED_LABEL: &str = "Why It Alerted";
pub const EXPECTED_LABEL: &str = "Expected";
pub const ROUTINE_LABEL: &str = "Routine";
pub const WHY_IT_MATTERS_LABEL: &str = "Why It Matters";
pub const TACTIC_LABEL: &str = "ATT&CK Tactic";

#[derive(Debug, thiserror::Error)]
pub enum DetectorError {
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error(transparent)]
    Catalogue(#[from] CatalogueError),
}

/// The catalogue, compiled once per container with the stack's settings (a clone shares it).
#[derive(Debug, Clone)]
pub struct Detector {
    catalogue: Arc<Catalogue>,
    attempts: Arc<Attempts>,
    /// The heartbeat's canary call, when the stack says which role makes it.
    canary: Option<Canary>,
}

/// How long a burst of one principal's attempts of one detection lasts: its first attempt is
/// high, the others are low (they go to the bulk lane and are digested there), so a flood of
/// cheap attempts never holds a success back in the priority lane.
pub const ATTEMPT_BURST_MS: i64 = 10 * 60 * 1_000;

/// Attempt bursts this container saw: (principal, detection) to when the burst started.
#[derive(Debug, Default)]
struct Attempts {
    started: std::sync::Mutex<std::collections::HashMap<String, i64>>,
}

/// Bursts remembered at most; older ones are forgotten first.
const MAX_BURSTS: usize = 10_000;

impl Attempts {
    /// Whether this attempt starts a burst (and is told high).
    fn starts_burst(&self, key: String, now_ms: i64) -> bool {
        let mut started = self
            .started
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if started.len() >= MAX_BURSTS {
            started.retain(|_, at| now_ms - *at < ATTEMPT_BURST_MS);
        }
        match started.get(&key) {
            Some(at) if now_ms - *at < ATTEMPT_BURST_MS => false,
            _ => {
                if started.len() < MAX_BURSTS {
                    started.insert(key, now_ms);
                }
                true
            }
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as i64)
}

impl Default for Detector {
    /// The catalogue with no stack settings: the detections that name a value of the stack
    /// (its name, its key, the honey bucket) are not looked for.
    fn default() -> Self {
        Detector::new(Settings::default()).expect("the catalogue compiled into the binary loads")
    }
}

impl Detector {
    pub fn new(settings: Settings) -> Result<Detector, DetectorError> {
        Ok(Detector {
            catalogue: Arc::new(Catalogue::load(settings)?),
            attempts: Arc::default(),
            canary: None,
        })
    }

    /// The same detector, recognising the heartbeat's canary call (see [`crate::heartbeat`]).
    pub fn with_canary(mut self, canary: Option<Canary>) -> Detector {
        self.canary = canary;
        self
    }

    /// The heartbeat leg a record is, when it is the stack's canary call: its Message
    /// (unsigned) and what its MAC covers.
    pub fn heartbeat(&self, view: &RecordView<'_>, path: Path) -> Option<(Message, String)> {
        let canary = self.canary.as_ref()?;
        let leg = canary.leg(view)?;
        Some((canary.message(&leg, path), canary.mac_text(&leg, path)))
    }

    /// Reads the settings the template gives the sources (see [`Settings::from_lookup`]), and
    /// the heartbeat's role (`HEARTBEAT_ROLE_ARN`).
    pub fn from_env() -> Result<Detector, DetectorError> {
        Detector::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the same settings from `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Detector, DetectorError> {
        let canary = Canary::from_lookup(&lookup);
        Ok(Detector::new(Settings::from_lookup(lookup)?)?.with_canary(canary))
    }

    pub fn catalogue(&self) -> &Catalogue {
        &self.catalogue
    }

    /// The detection a record is. The whole record is read only when one may be it; a denial
    /// is told from the view alone.
    pub fn detect(&self, view: &RecordView<'_>) -> Detected {
        let mut detected = Detected {
            denied: view.is_denial(),
            ..self.detect_kind(view)
        };
        if detected.attempt.is_some()
            && detected.severity >= Severity::High
            && let Some(detection) = &detected.detection
        {
            let key = format!("{} {}", view.principal().unwrap_or_default(), detection.id);
            if !self.attempts.starts_burst(key, now_ms()) {
                detected.severity = Severity::Low;
            }
        }
        detected
    }

    fn detect_kind(&self, view: &RecordView<'_>) -> Detected {
        let known = |path: &str| view.known_text(path);
        if self.catalogue.may_match(&known)
            && let Ok(record) = serde_json::from_str::<Value>(view.text())
            && let Some(found) = self.catalogue.classify(&event_of_record(record))
        {
            return Detected::of(&found);
        }
        // A denial needs no more than the view's values: what was denied, and to whom (what
        // is remembered of it).
        let mut small = Map::new();
        for key in [
            "eventSource",
            "eventName",
            "errorCode",
            "recipientAccountId",
        ] {
            if let Some(Some(text)) = view.known_text(key) {
                small.insert(key.into(), Value::String(text));
            }
        }
        let mut identity = Map::new();
        for key in ["type", "arn", "invokedBy", "accountId"] {
            if let Some(Some(text)) = view.known_text(&format!("userIdentity.{key}")) {
                identity.insert(key.into(), Value::String(text));
            }
        }
        small.insert("userIdentity".into(), Value::Object(identity));
        match self
            .catalogue
            .classify_fallback(&event_of_record(Value::Object(small)))
        {
            Some(found) => Detected::of(&found),
            None => Detected::unclassified(),
        }
    }

    /// The detection an EventBridge event is, read whole (sign-ins, say).
    pub fn detect_event(&self, event: &Value) -> Option<Detected> {
        self.catalogue
            .classify(event)
            .or_else(|| self.catalogue.classify_fallback(event))
            .map(|found| Detected::of(&found))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stop_logging(user: &str, error: Option<&str>) -> String {
        let mut record = serde_json::json!({
            "eventSource": "cloudtrail.amazonaws.com", "eventName": "StopLogging",
            "eventTime": "2026-12-03T10:00:00Z", "awsRegion": "us-east-1",
            "requestParameters": {"name": "main"},
            "userIdentity": {"type": "IAMUser", "arn": format!("arn:aws:iam::111122223333:user/{user}"),
                "accountId": "111122223333", "userName": user},
        });
        if let Some(code) = error {
            record["errorCode"] = serde_json::json!(code);
        }
        record.to_string()
    }

    #[test]
    fn a_flood_of_failed_attempts_is_high_once_per_principal_then_low() {
        let detector = Detector::default();
        let detect = |text: &str| detector.detect(&RecordView::parse(text).unwrap());
        let first = detect(&stop_logging("mallory", Some("AccessDenied")));
        assert_eq!(first.severity, Severity::High);
        assert!(first.denied && first.attempt.as_deref() == Some("AccessDenied"));
        let text = first.detection.as_ref().unwrap();
        assert_eq!(text.id, "cloudtrail-stopped");
        assert!(text.title.starts_with("Attempted: "), "{}", text.title);
        for _ in 0..100 {
            let again = detect(&stop_logging("mallory", Some("AccessDenied")));
            assert_eq!(again.severity, Severity::Low);
        }
        // Another principal's burst is its own; a failure that is no denial is an attempt too.
        let other = detect(&stop_logging("eve", Some("TrailNotFoundException")));
        assert_eq!(other.severity, Severity::High);
        assert!(!other.denied);
        // A success is never held back by the attempts before it.
        let done = detect(&stop_logging("mallory", None));
        assert_eq!(done.severity, Severity::Critical);
        assert_eq!(done.attempt, None);
    }
}
