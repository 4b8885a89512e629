//! Decoding a CloudWatch Logs subscription delivery (base64, gzip, JSON) and turning its log
//! events into outgoing Messages as they are parsed, so no record is held longer than needed.

use crate::Summary;
use activity_aware_cloudtrail::familiar::record_told_key;
use activity_aware_cloudtrail::heartbeat::Path;
use activity_aware_cloudtrail::{
    Detector, RecordView, message_from_record, message_json_from_record,
};
use activity_aware_message::{MESSAGE_BODY_LIMIT_BYTES, OutgoingMessage, Severity};
use base64::Engine;
use flate2::read::MultiGzDecoder;
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::fmt;
use std::io::Read;

/// Decompressed payloads larger than this are refused rather than exhausting the function's
/// memory; CloudWatch Logs itself sends far less than this per delivery.
pub const MAX_DECOMPRESSED_BYTES: u64 = 256 * 1024 * 1024;

const CONTROL_MESSAGE: &str = "CONTROL_MESSAGE";

/// The event a CloudWatch Logs subscription filter sends to Lambda.
#[derive(Debug, Clone, Deserialize)]
pub struct CloudWatchLogsEvent {
    pub awslogs: AwsLogs,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AwsLogs {
    /// Base64 of the gzip of the JSON payload.
    pub data: String,
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("awslogs.data is not valid base64: {0}")]
    Base64(#[source] base64::DecodeError),
    #[error("awslogs.data could not be gunzipped: {0}")]
    Gzip(#[source] std::io::Error),
    #[error("awslogs.data decompresses to more than {MAX_DECOMPRESSED_BYTES} bytes")]
    TooLarge,
    #[error("awslogs.data does not hold a CloudWatch Logs payload: {0}")]
    Json(#[source] serde_json::Error),
}

/// A log event that was skipped because it is not a CloudTrail record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedEvent {
    pub id: String,
    pub error: String,
}

#[derive(Debug, Default)]
pub struct Decoded {
    pub summary: Summary,
    pub outgoing: Vec<OutgoingMessage>,
    pub not_json: Vec<SkippedEvent>,
}

/// Decodes `awslogs.data` and maps each log event's CloudTrail record to its Message.
/// Takes the data by value so its memory is released as soon as it is decoded.
pub fn decode_and_transform(data: String, detector: &Detector) -> Result<Decoded, DecodeError> {
    transform_payload(&decode(data)?, detector)
}

/// The decompressed JSON payload of `awslogs.data`. Takes the data by value so its memory is
/// released as soon as it is decoded.
pub fn decode(data: String) -> Result<Vec<u8>, DecodeError> {
    let compressed = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(DecodeError::Base64)?;
    drop(data);
    gunzip(&compressed)
}

fn gunzip(compressed: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let mut json = Vec::with_capacity(compressed.len().saturating_mul(8));
    MultiGzDecoder::new(compressed)
        .take(MAX_DECOMPRESSED_BYTES + 1)
        .read_to_end(&mut json)
        .map_err(DecodeError::Gzip)?;
    if json.len() as u64 > MAX_DECOMPRESSED_BYTES {
        return Err(DecodeError::TooLarge);
    }
    Ok(json)
}

/// Maps the log events of a decompressed payload.
pub fn transform_payload(json: &[u8], detector: &Detector) -> Result<Decoded, DecodeError> {
    let mut outgoing = Vec::new();
    let (summary, not_json) =
        transform_payload_with(json, detector, &mut |message| outgoing.push(message))?;
    if summary.message_type == CONTROL_MESSAGE {
        outgoing.clear();
    }
    Ok(Decoded {
        summary,
        outgoing,
        not_json,
    })
}

/// Maps the log events of a decompressed payload, handing each Message to `emit` as soon as it
/// is made, so that it can be on its way before the next record is read. Returns what the
/// payload held and the log events skipped. A CONTROL_MESSAGE (CloudWatch Logs checking that
/// the destination is reachable, `messageType` first as it always writes it) emits nothing.
pub fn transform_payload_with(
    json: &[u8],
    detector: &Detector,
    emit: &mut dyn FnMut(OutgoingMessage),
) -> Result<(Summary, Vec<SkippedEvent>), DecodeError> {
    let mut mapper = Mapper {
        summary: Summary::default(),
        not_json: Vec::new(),
        detector,
        emit,
    };
    let mut deserializer = serde_json::Deserializer::from_slice(json);
    PayloadSeed(&mut mapper)
        .deserialize(&mut deserializer)
        .and_then(|()| deserializer.end())
        .map_err(DecodeError::Json)?;
    let Mapper {
        mut summary,
        mut not_json,
        ..
    } = mapper;
    if summary.message_type == CONTROL_MESSAGE {
        // Nothing to report.
        not_json.clear();
        summary.without_fields = 0;
        summary.truncated = 0;
        summary.dropped = 0;
    }
    summary.not_json = not_json.len();
    Ok((summary, not_json))
}

/// What the parser hands each log event to.
struct Mapper<'e> {
    summary: Summary,
    not_json: Vec<SkippedEvent>,
    detector: &'e Detector,
    emit: &'e mut dyn FnMut(OutgoingMessage),
}

/// What became of one log event's record.
enum Mapped {
    NotJson(String),
    WithoutFields,
    /// An expected change, and the stack drops those.
    Dropped,
    Message {
        body: String,
        truncated: bool,
        severity: Severity,
        detection: Option<String>,
        denied: bool,
        /// A heartbeat leg: what to sign before publishing.
        to_sign: Option<String>,
        /// A routine change: what is remembered of it.
        familiar: Option<String>,
        /// The event it tells: posted once, however many paths bring it.
        once: Option<String>,
    },
}

/// Maps one record's text to the JSON of its Message, cut to fit SNS when needed.
fn map_record(text: &str, detector: &Detector) -> Mapped {
    let view = match RecordView::parse(text) {
        Ok(view) => view,
        Err(error) => return Mapped::NotJson(error.to_string()),
    };
    if let Some((message, to_sign)) = detector.heartbeat(&view, Path::CloudWatchLogs) {
        return Mapped::Message {
            body: message.to_json(),
            truncated: false,
            severity: Severity::Info,
            detection: None,
            denied: false,
            to_sign: Some(to_sign),
            familiar: None,
            once: None,
        };
    }
    let detected = detector.detect(&view);
    if detected.dropped() {
        return Mapped::Dropped;
    }
    let severity = detected.severity;
    let denied = detected.denied;
    let familiar = detected.familiar_key.clone();
    let once = record_told_key(&view);
    let detection = detected
        .detection
        .as_ref()
        .map(|detection| detection.id.clone());
    match message_json_from_record(&view, &detected) {
        None => Mapped::WithoutFields,
        Some(body) if body.len() <= MESSAGE_BODY_LIMIT_BYTES => Mapped::Message {
            body,
            truncated: false,
            severity,
            detection,
            denied,
            to_sign: None,
            familiar,
            once,
        },
        Some(_) => {
            let message =
                message_from_record(&view, &detected).expect("the same record has the same fields");
            let (body, truncated) = message.to_json_within(MESSAGE_BODY_LIMIT_BYTES);
            Mapped::Message {
                body,
                truncated,
                severity,
                detection,
                denied,
                to_sign: None,
                familiar,
                once,
            }
        }
    }
}

impl Mapper<'_> {
    fn add_log_event(&mut self, id: String, mapped: Mapped) {
        self.summary.log_events += 1;
        match mapped {
            Mapped::NotJson(error) => self.not_json.push(SkippedEvent { id, error }),
            Mapped::WithoutFields => self.summary.without_fields += 1,
            Mapped::Dropped => self.summary.dropped += 1,
            Mapped::Message { .. } if self.summary.message_type == CONTROL_MESSAGE => {}
            Mapped::Message {
                body,
                truncated,
                severity,
                detection,
                denied,
                to_sign,
                familiar,
                once,
            } => {
                if truncated {
                    self.summary.truncated += 1;
                    tracing::warn!(log_event_id = ?id, "Message cut down to fit SNS's size limit");
                }
                (self.emit)(OutgoingMessage {
                    label: format!("log event {id}"),
                    body,
                    severity: Some(severity),
                    detection,
                    denied,
                    to_sign,
                    familiar,
                    once,
                });
            }
        }
    }
}

/// One log event: its id, and its message parsed as a CloudTrail record straight from the
/// payload parser's buffer (the message text is never copied out on its own).
struct LogEventSeed<'a, 'e>(&'a mut Mapper<'e>);

impl<'de> DeserializeSeed<'de> for LogEventSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for LogEventSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a log event object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut id = String::new();
        let mut record = None;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match key.as_ref() {
                "id" => id = map.next_value()?,
                "message" => record = Some(map.next_value_seed(RecordInText(self.0.detector))?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let mapped =
            record.unwrap_or_else(|| Mapped::NotJson("the log event has no message".to_owned()));
        self.0.add_log_event(id, mapped);
        Ok(())
    }
}

/// A JSON string holding a CloudTrail record, parsed where the payload parser unescaped it.
struct RecordInText<'d>(&'d Detector);

impl<'de> DeserializeSeed<'de> for RecordInText<'_> {
    type Value = Mapped;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl Visitor<'_> for RecordInText<'_> {
    type Value = Mapped;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a log event message (text)")
    }

    fn visit_str<E>(self, text: &str) -> Result<Self::Value, E> {
        Ok(map_record(text, self.0))
    }
}

/// Reads the payload object, handing each log event to [`Mapper::add_log_event`] as it is read.
struct PayloadSeed<'a, 'e>(&'a mut Mapper<'e>);

impl<'de> DeserializeSeed<'de> for PayloadSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for PayloadSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a CloudWatch Logs payload object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut saw_log_events = false;
        let (mut log_group, mut log_stream) = (None::<String>, None::<String>);
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match key.as_ref() {
                "messageType" => self.0.summary.message_type = map.next_value()?,
                "logGroup" => log_group = Some(map.next_value()?),
                "logStream" => log_stream = Some(map.next_value()?),
                "logEvents" => {
                    saw_log_events = true;
                    if self.0.summary.message_type != CONTROL_MESSAGE {
                        let trail_group = self
                            .0
                            .detector
                            .catalogue()
                            .settings()
                            .parts
                            .trail_log_group
                            .as_deref();
                        provenance(log_group.as_deref(), log_stream.as_deref(), trail_group)
                            .map_err(de::Error::custom)?;
                    }
                    map.next_value_seed(LogEventsSeed(self.0))?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        // Any other JSON object is a change of format to report, not an empty delivery.
        if !saw_log_events {
            return Err(de::Error::missing_field("logEvents"));
        }
        Ok(())
    }
}

/// Whether a delivery comes from where CloudTrail writes: the trail's log group the stack was
/// given (when it was given one), and a stream CloudTrail names (`ACCOUNT_CloudTrail_REGION`,
/// an organization trail's `o-ID_ACCOUNT_CloudTrail_REGION`), said before the log events as
/// CloudWatch Logs writes a payload. Anything else is someone's own lines subscribed to the
/// source: the invocation fails, the delivery goes to the failure queue and the alarm on it
/// fires, and nothing of it is posted as CloudTrail's.
pub fn provenance(
    log_group: Option<&str>,
    log_stream: Option<&str>,
    trail_group: Option<&str>,
) -> Result<(), String> {
    let group = log_group.ok_or("the payload names no log group before its log events")?;
    if let Some(trail) = trail_group.filter(|trail| !trail.is_empty())
        && group != trail
    {
        return Err(format!(
            "delivered from log group {group:?}, not the trail's {trail:?}: nothing of it is CloudTrail's"
        ));
    }
    let stream = log_stream.ok_or("the payload names no log stream before its log events")?;
    if !is_cloudtrail_stream(stream) {
        return Err(format!(
            "delivered from log stream {stream:?}, which is no stream CloudTrail writes (ACCOUNT_CloudTrail_REGION)"
        ));
    }
    Ok(())
}

fn is_cloudtrail_stream(stream: &str) -> bool {
    // An organization trail's streams start with the organization's ID.
    let stream = match stream.strip_prefix("o-") {
        Some(rest) => match rest.split_once('_') {
            Some((id, rest)) if !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric()) => {
                rest
            }
            _ => return false,
        },
        None => stream,
    };
    let Some((account, region)) = stream.split_once("_CloudTrail_") else {
        return false;
    };
    // A region, and a number CloudTrail adds when it starts a new stream.
    let region = region.split('_').next().unwrap_or_default();
    account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && !region.is_empty()
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

struct LogEventsSeed<'a, 'e>(&'a mut Mapper<'e>);

impl<'de> DeserializeSeed<'de> for LogEventsSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for LogEventsSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("an array of log events")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(LogEventSeed(self.0))?.is_some() {}
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use activity_aware_message::{Message, TRUNCATION_MARKER};
    use flate2::Compression;
    use flate2::write::GzEncoder;
    use serde_json::{Value, json};
    use std::io::Write;

    use test_world::payloads::{cloudtrail_records, edge_case_records};

    fn gzip_bytes(bytes: &[u8]) -> Vec<u8> {
        let mut gzip = GzEncoder::new(Vec::new(), Compression::default());
        gzip.write_all(bytes).unwrap();
        gzip.finish().unwrap()
    }

    fn encode(payload: &Value) -> String {
        base64::engine::general_purpose::STANDARD.encode(gzip_bytes(payload.to_string().as_bytes()))
    }

    fn payload(message_type: &str, messages: &[String]) -> Value {
        json!({
            "messageType": message_type,
            "owner": "111122223333",
            "logGroup": "CloudTrail/DefaultLogGroup",
            "logStream": "111122223333_CloudTrail_us-east-1",
            "subscriptionFilters": ["Activity-Aware-IDS"],
            "logEvents": messages.iter().enumerate().map(|(i, message)| json!({
                "id": format!("3{i:055}"),
                "timestamp": 1_700_000_000_000u64 + i as u64,
                "message": message,
            })).collect::<Vec<_>>(),
        })
    }

    #[test]
    fn only_deliveries_from_the_trails_log_group_and_cloudtrails_streams_are_read() {
        let trail = Some("CloudTrail/DefaultLogGroup");
        let ok = |group, stream| provenance(Some(group), Some(stream), trail);
        assert!(
            ok(
                "CloudTrail/DefaultLogGroup",
                "111122223333_CloudTrail_us-east-1"
            )
            .is_ok()
        );
        assert!(
            ok(
                "CloudTrail/DefaultLogGroup",
                "o-a1b2c3d4e5_111122223333_CloudTrail_eu-west-1"
            )
            .is_ok()
        );
        assert!(
            ok(
                "CloudTrail/DefaultLogGroup",
                "111122223333_CloudTrail_us-east-1_2"
            )
            .is_ok()
        );
        let wrong_group = ok("/aws/lambda/app", "111122223333_CloudTrail_us-east-1").unwrap_err();
        assert!(wrong_group.contains("not the trail's"), "{wrong_group}");
        for stream in [
            "forged",
            "2021/10/21/[$LATEST]1111",
            "11112222333_CloudTrail_us-east-1",
            "111122223333_CloudTrail_",
            "111122223333_CloudTrail_US-EAST-1",
            "o-_111122223333_CloudTrail_us-east-1",
        ] {
            assert!(
                ok("CloudTrail/DefaultLogGroup", stream).is_err(),
                "{stream}"
            );
        }
        // Without a trail's group named, any group; a stream CloudTrail writes all the same.
        assert!(provenance(Some("any"), Some("111122223333_CloudTrail_us-east-1"), None).is_ok());
        assert!(provenance(None, Some("111122223333_CloudTrail_us-east-1"), None).is_err());
        assert!(provenance(Some("any"), None, None).is_err());
    }

    #[test]
    fn a_delivery_from_elsewhere_publishes_nothing() {
        let detector = Detector::from_lookup(|name| {
            (name == "CLOUDTRAIL_LOG_GROUP").then(|| "CloudTrail/DefaultLogGroup".to_owned())
        })
        .unwrap();
        let mut forged = payload("DATA_MESSAGE", &[denial("ListUsers")]);
        forged["logGroup"] = json!("/aws/lambda/app");
        let error = transform_payload(forged.to_string().as_bytes(), &detector).unwrap_err();
        assert!(error.to_string().contains("not the trail's"), "{error}");
        let genuine = payload("DATA_MESSAGE", &[denial("ListUsers")]);
        let decoded = transform_payload(genuine.to_string().as_bytes(), &detector).unwrap();
        assert_eq!(decoded.outgoing.len(), 1);
        // CloudWatch Logs' own check of the destination names neither.
        let control = json!({"messageType": "CONTROL_MESSAGE", "owner": "CloudwatchLogs",
            "logGroup": "", "logStream": "", "subscriptionFilters": [],
            "logEvents": [{"id": "", "timestamp": 1, "message": "CWL CONTROL MESSAGE: Checking health of destination Lambda."}]});
        assert!(transform_payload(control.to_string().as_bytes(), &detector).is_ok());
    }

    fn denial(name: &str) -> String {
        json!({"eventName": name, "errorCode": "AccessDenied", "errorMessage": format!("denied {name}")}).to_string()
    }

    fn bodies(decoded: &Decoded) -> Vec<Message> {
        decoded
            .outgoing
            .iter()
            .map(|outgoing| Message::from_json(&outgoing.body).unwrap())
            .collect()
    }

    #[test]
    fn each_record_becomes_one_message_in_order() {
        let data = encode(&payload(
            "DATA_MESSAGE",
            &[denial("A"), denial("B"), denial("C")],
        ));
        let decoded = decode_and_transform(data, &Detector::default()).unwrap();
        let subjects: Vec<_> = bodies(&decoded).into_iter().map(|m| m.subject).collect();
        assert_eq!(
            subjects,
            [
                "Error Message: denied A",
                "Error Message: denied B",
                "Error Message: denied C"
            ]
        );
        assert_eq!(decoded.summary.log_events, 3);
        assert_eq!(decoded.summary.message_type, "DATA_MESSAGE");
        assert_eq!(decoded.outgoing[1].label, format!("log event 3{:055}", 1));
    }

    #[test]
    fn a_record_that_is_not_json_is_skipped_and_its_neighbours_kept() {
        let messages = [
            denial("A"),
            "this is not json".to_owned(),
            "[1,2]".to_owned(),
            denial("B"),
        ];
        let decoded = decode_and_transform(
            encode(&payload("DATA_MESSAGE", &messages)),
            &Detector::default(),
        )
        .unwrap();
        assert_eq!(bodies(&decoded).len(), 2);
        assert_eq!(decoded.summary.not_json, 2);
        assert_eq!(decoded.not_json[0].id, format!("3{:055}", 1));
        assert!(
            decoded.not_json[0].error.contains("expected"),
            "{}",
            decoded.not_json[0].error
        );
    }

    #[test]
    fn records_without_fields_publish_nothing() {
        let messages = [
            "{}".to_owned(),
            json!({"eventVersion": "1.08"}).to_string(),
            denial("A"),
        ];
        let decoded = decode_and_transform(
            encode(&payload("DATA_MESSAGE", &messages)),
            &Detector::default(),
        )
        .unwrap();
        assert_eq!(decoded.summary.without_fields, 2);
        assert_eq!(decoded.outgoing.len(), 1);
    }

    #[test]
    fn control_messages_publish_nothing() {
        let messages =
            ["CWL CONTROL MESSAGE: Checking health of destination Kinesis stream.".to_owned()];
        let decoded = decode_and_transform(
            encode(&payload(CONTROL_MESSAGE, &messages)),
            &Detector::default(),
        )
        .unwrap();
        assert!(decoded.outgoing.is_empty());
        assert_eq!(decoded.summary.not_json, 0);
        assert_eq!(decoded.summary.log_events, 1);
    }

    #[test]
    fn undecodable_payloads_are_clear_errors() {
        let error =
            decode_and_transform("%%% not base64 %%%".into(), &Detector::default()).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("awslogs.data is not valid base64"),
            "{error}"
        );

        let not_gzip = base64::engine::general_purpose::STANDARD.encode(b"{\"plain\": \"json\"}");
        let error = decode_and_transform(not_gzip, &Detector::default()).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("awslogs.data could not be gunzipped"),
            "{error}"
        );

        let not_json =
            base64::engine::general_purpose::STANDARD.encode(gzip_bytes(b"not json at all"));
        let error = decode_and_transform(not_json, &Detector::default()).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("awslogs.data does not hold a CloudWatch Logs payload"),
            "{error}"
        );

        let truncated = encode(&payload("DATA_MESSAGE", &[denial("A")]));
        let error = decode_and_transform(
            truncated[..truncated.len() / 2].to_owned(),
            &Detector::default(),
        )
        .unwrap_err();
        assert!(
            matches!(error, DecodeError::Base64(_) | DecodeError::Gzip(_)),
            "{error}"
        );
    }

    #[test]
    fn the_originals_sample_event_decodes() {
        // The sample event shipped with the original project.
        let data = "H4sIANjoj1gAA31TyW6jQBS85ysQ59jpZjNwQzGJUGzLipnRLB6hDnSc1gDt6cVWEvnf59Fgk8lh4MBS9erVW/r9yoLLbqiUZEfz1z21Y8ueJ3lSLNPNJrlP7euewo8tFR04Cz0/cn0He55/Bmu+uxdc7zv8tua6ygVh9c2cPhNdq8UZHdkbJShpPssVY2yh5eRIpZo45yipn2Qp2F4x3t6xWlEhIf6nAQ1hQZqnivTKRaLVyx3oaEFXXLFnBuYN9ddoIj3QVv0r8n55MyRWdRZdF/kzL8R+EHrIDQLPCXw/cqIQvn2EXRRFXug4CIcRdmduFPihGzgRGpxf1BSDPivSdG3CEOF64czDCKFPvGEaXer3rU07l1+hWqh7a8dbG0+Rv7Wvt7aWVGQVoEy9AgJcBQM0nCxZfgHU0PaCtSXbkzqrDJZ+K9aP2eo2WyeLIpsbDhG9NjxjcpQxI00cY3DoB7MwQtiJu2Q3Sc1K2geUJdetGiQ/Ms8wFPFAXy85k+V6kRYP6fdzyk5wRZre7yB8uh7qzdkAQFe9CXInKMgdHDtO7Hs/TLihbbgWZU+USk5JQ954C/6nJW9G1phFSt3QR14PNRzlI92d2woLRwksHDaYNMrQoqoSUMlQ5WyK4MYX/8kO5A22JK0mtZW1B/6bKKPZpReCi1teDUNpVTcscFjnsAis3Y2kZT9zw8tfqJWUih1grlZyJIJa2XxjjYfD6uu2+o23jkRarEtMq6lRFPSPhgRrIqDy7qCAbKvr2kByz1tJ05o23fZ/RGBJGPxL/jPak31Z1VN/nK5OfwGshm6PRAQAAA==";
        let decoded = decode_and_transform(data.into(), &Detector::default()).unwrap();
        assert_eq!(decoded.summary.log_events, 1);
        let message = &bodies(&decoded)[0];
        assert!(
            message.subject.starts_with("Error Message: "),
            "{}",
            message.subject
        );
    }

    #[test]
    fn oversized_records_are_cut_to_fit_and_still_sent() {
        // The inflated RunInstances record, with its bulk moved to where the Message shows it.
        let huge = edge_case_records()
            .into_iter()
            .find(|line| line.len() > 300_000)
            .unwrap();
        let mut record: Value = serde_json::from_str(huge).unwrap();
        record["requestParameters"] = record["responseElements"].take();
        let decoded = decode_and_transform(
            encode(&payload("DATA_MESSAGE", &[record.to_string()])),
            &Detector::default(),
        )
        .unwrap();
        assert_eq!(decoded.summary.truncated, 1);
        let body = &decoded.outgoing[0].body;
        assert!(body.len() <= MESSAGE_BODY_LIMIT_BYTES);
        assert!(body.contains(TRUNCATION_MARKER));
    }

    #[test]
    fn every_fixture_record_round_trips_through_a_payload() {
        let lines: Vec<String> = cloudtrail_records()
            .into_iter()
            .map(str::to_owned)
            .collect();
        let decoded = decode_and_transform(
            encode(&payload("DATA_MESSAGE", &lines)),
            &Detector::default(),
        )
        .unwrap();
        assert_eq!(decoded.summary.log_events, lines.len());
        assert_eq!(decoded.summary.not_json, 0);
        assert_eq!(
            decoded.outgoing.len() + decoded.summary.without_fields,
            lines.len()
        );
        for outgoing in &decoded.outgoing {
            Message::from_json(&outgoing.body).unwrap();
        }
    }
}
