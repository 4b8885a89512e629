//! What CloudTrail itself recorded: containment acts on the denials CloudTrail's event history
//! (`LookupEvents`) holds for the reported access key, never on what a Message says. A Message
//! can be forged by whoever may publish to the topic, write to the trail's log group or invoke
//! the function; CloudTrail's history cannot.

use aws_query::{JsonClient, QueryError, Service};
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

/// Pages of 50 events read per lookup at most (CloudTrail answers 2 lookups a second).
const MAX_PAGES: usize = 10;

/// CloudTrail's event history, a client per region, made when first needed.
pub struct CloudTrailHistory {
    config: aws_config::SdkConfig,
    clients: Mutex<HashMap<String, JsonClient>>,
}

/// A region name that can go into an endpoint's host: lowercase letters, digits and dashes.
pub fn is_region(region: &str) -> bool {
    (1..=32).contains(&region.len())
        && region
            .bytes()
            .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-')
}

impl CloudTrailHistory {
    pub fn new(config: aws_config::SdkConfig) -> CloudTrailHistory {
        CloudTrailHistory {
            config,
            clients: Mutex::new(HashMap::new()),
        }
    }

    fn client(&self, region: &str) -> Result<JsonClient, QueryError> {
        let mut clients = self.clients.lock().expect("no panic holds this lock");
        if let Some(client) = clients.get(region) {
            return Ok(client.clone());
        }
        let client = JsonClient::new(&self.config, Service::CloudTrail, Some(region))?;
        clients.insert(region.to_owned(), client.clone());
        Ok(client)
    }

    /// The records of the calls made with `access_key` in `region` between `from_ms` and
    /// `to_ms` (milliseconds since 1970), newest first, as CloudTrail recorded them.
    pub async fn calls(
        &self,
        region: &str,
        access_key: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<Value>, QueryError> {
        if !is_region(region) {
            return Err(QueryError::Answer(format!(
                "{region:?} is not a region name"
            )));
        }
        let client = self.client(region)?;
        let mut records = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut request = json!({
                "LookupAttributes": [{"AttributeKey": "AccessKeyId", "AttributeValue": access_key}],
                "StartTime": from_ms / 1_000,
                "EndTime": to_ms / 1_000 + 1,
                "MaxResults": 50,
            });
            if let Some(token) = &token {
                request["NextToken"] = json!(token);
            }
            let answer = client.call("LookupEvents", &request).await?;
            for event in answer["Events"].as_array().into_iter().flatten() {
                // The record is in the event as JSON text.
                if let Some(record) = event["CloudTrailEvent"]
                    .as_str()
                    .and_then(|text| serde_json::from_str::<Value>(text).ok())
                {
                    records.push(record);
                }
            }
            match answer["NextToken"].as_str() {
                Some(next) if !next.is_empty() => token = Some(next.to_owned()),
                _ => break,
            }
        }
        Ok(records)
    }
}

/// A denial CloudTrail recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirmed {
    pub event_id: String,
    pub event_name: String,
    pub source_ip: Option<String>,
    pub event_time: String,
    /// `userIdentity.principalId`: a role session's is `ROLEID:session-name`.
    pub principal_id: String,
}

fn text<'v>(record: &'v Value, path: &[&str]) -> Option<&'v str> {
    path.iter()
        .try_fold(record, |value, key| value.get(*key))
        .and_then(Value::as_str)
}

/// The records that are denials of `principal`'s calls in `account`, each once: CloudTrail's
/// own word for who was denied what, from where and when.
pub fn confirmed_denials(records: &[Value], principal: &str, account: &str) -> Vec<Confirmed> {
    let mut seen = BTreeSet::new();
    records
        .iter()
        .filter(|record| {
            text(record, &["errorCode"]).is_some_and(|code| {
                code.starts_with("AccessDenied") || code.ends_with("UnauthorizedOperation")
            }) && text(record, &["userIdentity", "arn"]) == Some(principal)
                && text(record, &["userIdentity", "accountId"]) == Some(account)
                && text(record, &["recipientAccountId"])
                    .is_none_or(|recipient| recipient == account)
        })
        .filter_map(|record| {
            let confirmed = Confirmed {
                event_id: text(record, &["eventID"])?.to_owned(),
                event_name: text(record, &["eventName"])?.to_owned(),
                source_ip: text(record, &["sourceIPAddress"]).map(str::to_owned),
                event_time: text(record, &["eventTime"])?.to_owned(),
                principal_id: text(record, &["userIdentity", "principalId"])?.to_owned(),
            };
            seen.insert(confirmed.event_id.clone()).then_some(confirmed)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, arn: &str, account: &str, code: Option<&str>) -> Value {
        let mut record = json!({"eventID": id, "eventName": "ListUsers", "eventTime": "2026-12-03T10:00:00Z",
            "sourceIPAddress": "203.0.113.7", "recipientAccountId": account,
            "userIdentity": {"arn": arn, "accountId": account, "principalId": "AROAEXAMPLE:i-0abc"}});
        if let Some(code) = code {
            record["errorCode"] = json!(code);
        }
        record
    }

    #[test]
    fn only_the_principals_own_denials_in_its_account_count_each_once() {
        let app = "arn:aws:sts::111122223333:assumed-role/app/i-0abc";
        let records = [
            record("1", app, "111122223333", Some("AccessDenied")),
            record("1", app, "111122223333", Some("AccessDenied")),
            record(
                "2",
                app,
                "111122223333",
                Some("Client.UnauthorizedOperation"),
            ),
            record("3", app, "111122223333", None),
            record("4", app, "111122223333", Some("NoSuchEntity")),
            record(
                "5",
                "arn:aws:sts::111122223333:assumed-role/app/other",
                "111122223333",
                Some("AccessDenied"),
            ),
            record("6", app, "444455556666", Some("AccessDenied")),
        ];
        let confirmed = confirmed_denials(&records, app, "111122223333");
        let ids: Vec<&str> = confirmed.iter().map(|c| c.event_id.as_str()).collect();
        assert_eq!(ids, ["1", "2"]);
        assert_eq!(confirmed[0].principal_id, "AROAEXAMPLE:i-0abc");
    }

    #[test]
    fn only_region_names_reach_an_endpoint() {
        assert!(is_region("eu-west-3"));
        for bad in ["", "evil.example/x", "US-EAST-1", "a@b", &"a".repeat(40)] {
            assert!(!is_region(bad), "{bad}");
        }
    }
}
