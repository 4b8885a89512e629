//! CloudWatch Logs deliveries built from the real CloudTrail corpus, for tests and benchmarks.

use crate::events::{awslogs_event, data_message};
use serde_json::{Value, json};

/// Lambda refuses a synchronous invocation request larger than 6 MB; nothing larger can reach
/// a function.
pub const LAMBDA_MAX_PAYLOAD_BYTES: usize = 6 * 1024 * 1024;

const RECORDS: &str = include_str!("../../../fixtures/cloudtrail/records.jsonl");

const EDGE_CASES: &str = include_str!("../../../fixtures/cloudtrail/edge-cases.jsonl");

/// The corpus's 1,916 real CloudTrail records, one JSON text each.
pub fn cloudtrail_records() -> Vec<&'static str> {
    RECORDS.lines().filter(|line| !line.is_empty()).collect()
}

/// The corpus's six synthetic edge cases (non-ASCII keys, escapes, 400 KB records...).
pub fn edge_case_records() -> Vec<&'static str> {
    EDGE_CASES.lines().filter(|line| !line.is_empty()).collect()
}

/// Records crafted to stop a delivery (what an attacker controls: error messages, request
/// parameters): a lone surrogate escape, nesting past serde_json's 128 levels, and both in a
/// record large enough that its Message must be cut to fit SNS. Each is a valid JSON text.
pub fn poison_records() -> Vec<String> {
    let deep = |depth: usize| format!("{}\"x\"{}", "[".repeat(depth), "]".repeat(depth));
    let record = |error_message: &str, parameters: &str| {
        format!(
            r#"{{"eventVersion":"1.08","userIdentity":{{"type":"IAMUser","arn":"arn:aws:iam::111122223333:user/mallory","accountId":"111122223333","userName":"mallory"}},"eventTime":"2024-06-02T20:16:32Z","eventSource":"iam.amazonaws.com","eventName":"GetUser","awsRegion":"us-east-1","sourceIPAddress":"203.0.113.9","errorCode":"AccessDenied","errorMessage":{error_message},"requestParameters":{parameters},"eventID":"0e6c2d0e-0000-4000-8000-000000000001","recipientAccountId":"111122223333"}}"#
        )
    };
    vec![
        record(r#""lone \ud800 surrogate""#, r#"{"userName":"x"}"#),
        record(r#""denied""#, &format!(r#"{{"nested":{}}}"#, deep(200))),
        record(
            r#""\udfff""#,
            &format!(
                r#"{{"padding":"{}","nested":{}}}"#,
                "p".repeat(300 * 1024),
                deep(130)
            ),
        ),
    ]
}

/// The EventBridge samples of `fixtures/eventbridge/` (see its PROVENANCE.md), by name: every
/// detail-type the EventBridge source knows, and a few it does not.
pub const EVENTBRIDGE_SAMPLES: [(&str, &str); 23] = [
    (
        "api-call-cloudtrail-delete-trail",
        include_str!("../../../fixtures/eventbridge/api-call-cloudtrail-delete-trail.json"),
    ),
    (
        "api-call-cloudtrail-stop-logging",
        include_str!("../../../fixtures/eventbridge/api-call-cloudtrail-stop-logging.json"),
    ),
    (
        "api-call-ec2-modify-image-attribute-unauthorized",
        include_str!(
            "../../../fixtures/eventbridge/api-call-ec2-modify-image-attribute-unauthorized.json"
        ),
    ),
    (
        "api-call-iam-attach-role-policy-admin",
        include_str!("../../../fixtures/eventbridge/api-call-iam-attach-role-policy-admin.json"),
    ),
    (
        "api-call-iam-create-access-key-by-root",
        include_str!("../../../fixtures/eventbridge/api-call-iam-create-access-key-by-root.json"),
    ),
    (
        "api-call-iam-get-role-access-denied",
        include_str!("../../../fixtures/eventbridge/api-call-iam-get-role-access-denied.json"),
    ),
    (
        "api-call-iam-put-user-policy",
        include_str!("../../../fixtures/eventbridge/api-call-iam-put-user-policy.json"),
    ),
    (
        "api-call-iam-update-assume-role-policy",
        include_str!("../../../fixtures/eventbridge/api-call-iam-update-assume-role-policy.json"),
    ),
    (
        "api-call-s3-create-bucket-by-root",
        include_str!("../../../fixtures/eventbridge/api-call-s3-create-bucket-by-root.json"),
    ),
    (
        "api-call-s3-get-object-access-denied",
        include_str!("../../../fixtures/eventbridge/api-call-s3-get-object-access-denied.json"),
    ),
    (
        "console-sign-in-iam-user-failure",
        include_str!("../../../fixtures/eventbridge/console-sign-in-iam-user-failure.json"),
    ),
    (
        "console-sign-in-iam-user-mfa-success",
        include_str!("../../../fixtures/eventbridge/console-sign-in-iam-user-mfa-success.json"),
    ),
    (
        "console-sign-in-iam-user-no-mfa",
        include_str!("../../../fixtures/eventbridge/console-sign-in-iam-user-no-mfa.json"),
    ),
    (
        "console-sign-in-root-failure",
        include_str!("../../../fixtures/eventbridge/console-sign-in-root-failure.json"),
    ),
    (
        "console-sign-in-root-success",
        include_str!("../../../fixtures/eventbridge/console-sign-in-root-success.json"),
    ),
    (
        "guardduty-accesskey-tor-caller-medium",
        include_str!("../../../fixtures/eventbridge/guardduty-accesskey-tor-caller-medium.json"),
    ),
    (
        "guardduty-iam-privilege-escalation-high",
        include_str!("../../../fixtures/eventbridge/guardduty-iam-privilege-escalation-high.json"),
    ),
    (
        "guardduty-iam-privilege-escalation-low",
        include_str!("../../../fixtures/eventbridge/guardduty-iam-privilege-escalation-low.json"),
    ),
    (
        "guardduty-instance-c2-dns-medium",
        include_str!("../../../fixtures/eventbridge/guardduty-instance-c2-dns-medium.json"),
    ),
    (
        "guardduty-s3bucket-pentest-medium",
        include_str!("../../../fixtures/eventbridge/guardduty-s3bucket-pentest-medium.json"),
    ),
    (
        "other-health-ec2-retirement-scheduled",
        include_str!("../../../fixtures/eventbridge/other-health-ec2-retirement-scheduled.json"),
    ),
    (
        "other-s3-object-created",
        include_str!("../../../fixtures/eventbridge/other-s3-object-created.json"),
    ),
    (
        "other-securityhub-custom-action",
        include_str!("../../../fixtures/eventbridge/other-securityhub-custom-action.json"),
    ),
];

/// One EventBridge sample by name (its file name without `.json`).
pub fn eventbridge_sample(name: &str) -> Value {
    let (_, text) = EVENTBRIDGE_SAMPLES
        .iter()
        .find(|(sample, _)| *sample == name)
        .unwrap_or_else(|| panic!("no EventBridge sample {name}"));
    serde_json::from_str(text).expect("EventBridge samples are JSON")
}

/// Seed inputs for the fuzz targets (`fuzz/fuzz_targets/`), by target: Logs payloads and lone
/// records, `awslogs.data`-like bytes, and Messages with hostile markup, from the corpus.
pub fn fuzz_seeds() -> Vec<(&'static str, String, Vec<u8>)> {
    let records: Vec<&str> = cloudtrail_records()
        .into_iter()
        .chain(edge_case_records())
        .filter(|record| record.len() < 8_000)
        .collect();
    let poison = poison_records();
    let mut seeds = Vec::new();
    for start in (0..records.len()).step_by(97) {
        let batch: Vec<String> = records[start..(start + 3).min(records.len())]
            .iter()
            .map(|record| record.to_string())
            .collect();
        let payload = crate::events::data_message(&batch).to_string();
        seeds.push((
            "logs_payload",
            format!("payload-{start}"),
            payload.clone().into_bytes(),
        ));
        seeds.push((
            "logs_payload",
            format!("record-{start}"),
            batch[0].clone().into_bytes(),
        ));
        let mut data = vec![1u8];
        data.extend_from_slice(payload.as_bytes());
        seeds.push(("awslogs_data", format!("payload-{start}"), data));
        let record: Value = serde_json::from_str(&batch[0]).expect("corpus records are JSON");
        let fields: Vec<Value> = ["errorMessage", "eventName", "requestParameters"]
            .iter()
            .filter(|key| record.get(**key).is_some_and(|value| !value.is_null()))
            .map(|key| json!({"key": key, "value": record[*key]}))
            .collect();
        let message = json!({
            "subject": "s <!channel> & more",
            "fields": fields,
            "metadata": {"sourceName": "Cloudtrail"},
            "tags": [{"key": "slack-preferred-channel", "value": "#x"}, {"key": "digest-group", "value": "g"}],
        });
        seeds.push((
            "message",
            format!("message-{start}"),
            message.to_string().into_bytes(),
        ));
    }
    // libFuzzer takes seeds of a few kilobytes best: the large one is left to the tests.
    for (number, record) in poison
        .into_iter()
        .enumerate()
        .filter(|(_, r)| r.len() < 8_000)
    {
        let payload = crate::events::data_message(std::slice::from_ref(&record)).to_string();
        seeds.push((
            "logs_payload",
            format!("poison-payload-{number}"),
            payload.into_bytes(),
        ));
        seeds.push((
            "logs_payload",
            format!("poison-record-{number}"),
            record.into_bytes(),
        ));
    }
    // The EventBridge source's events: every sample, and corpus records as API call events.
    for (name, text) in EVENTBRIDGE_SAMPLES {
        seeds.push((
            "eventbridge_event",
            format!("sample-{name}"),
            text.as_bytes().to_vec(),
        ));
    }
    for start in (0..records.len()).step_by(197) {
        let record: Value = serde_json::from_str(records[start]).expect("corpus records are JSON");
        seeds.push((
            "eventbridge_event",
            format!("record-{start}"),
            crate::events::eventbridge_api_call(&record)
                .to_string()
                .into_bytes(),
        ));
    }
    // The open-port response's event: an opening at home, and in a member account.
    let opened = crate::responders::public_ingress_event(
        "sg-0123456789abcdef0",
        &[
            (Some("sgr-0a"), "tcp", 22, "0.0.0.0/0"),
            (Some("sgr-0b"), "tcp", 443, "::/0"),
        ],
    );
    let member = crate::responders::rehomed(&opened, "222233334444", "eu-west-3");
    for (name, event) in [("opened", opened), ("opened-in-a-member-account", member)] {
        seeds.push((
            "responder_event",
            name.into(),
            event.to_string().into_bytes(),
        ));
    }
    let poison_message =
        r#"{"subject":"s","fields":[{"key":"k","value":"\ud800"}],"metadata":{},"tags":[]}"#;
    seeds.push((
        "message",
        "poison-message".into(),
        poison_message.as_bytes().to_vec(),
    ));
    seeds
}

/// A delivery of `count` records, cycling through the corpus.
pub fn cloudtrail_event(count: usize) -> Value {
    build(count).event
}

#[derive(Debug, Clone)]
pub struct BuiltEvent {
    pub event: Value,
    pub records: usize,
    /// Size of the event's JSON text, as Lambda receives it.
    pub event_bytes: usize,
    /// Size of the decompressed CloudWatch Logs payload inside it.
    pub decompressed_bytes: usize,
}

fn build(count: usize) -> BuiltEvent {
    let records = cloudtrail_records();
    let messages: Vec<String> = records
        .iter()
        .cycle()
        .take(count)
        .map(|record| record.to_string())
        .collect();
    let payload = data_message(&messages);
    let decompressed_bytes = payload.to_string().len();
    let event = awslogs_event(&payload);
    BuiltEvent {
        event_bytes: event.to_string().len(),
        event,
        records: count,
        decompressed_bytes,
    }
}

/// The largest delivery of corpus records whose event still fits Lambda's payload limit.
pub fn largest_cloudtrail_event() -> BuiltEvent {
    let mut count = 2_000;
    let mut best: Option<BuiltEvent> = None;
    // Size grows almost linearly with the record count: a few proportional steps get close,
    // then small steps settle on the largest count that fits.
    for _ in 0..6 {
        let built = build(count);
        let ratio = LAMBDA_MAX_PAYLOAD_BYTES as f64 / built.event_bytes as f64;
        if built.event_bytes <= LAMBDA_MAX_PAYLOAD_BYTES
            && best.as_ref().is_none_or(|b| b.records < built.records)
        {
            best = Some(built);
        }
        let next = ((count as f64) * ratio * 0.999) as usize;
        if next.abs_diff(count) <= count / 500 {
            break;
        }
        count = next;
    }
    let mut best = best.unwrap_or_else(|| build(1));
    loop {
        let step = (best.records / 200).max(1);
        let bigger = build(best.records + step);
        if bigger.event_bytes > LAMBDA_MAX_PAYLOAD_BYTES {
            return best;
        }
        best = bigger;
    }
}

/// A permission-enumeration probe as CloudTrail records it: a stolen key trying read-only calls
/// service by service, region by region, nearly all denied, with a few denials of other
/// principals mixed in. Built from a real denial in the corpus (an exposed IAM user's key).
#[derive(Debug, Clone)]
pub struct Probe {
    /// The ARN of the principal whose key probes.
    pub attacker: String,
    /// Every action tried, as `eventName`.
    pub actions: Vec<String>,
    pub regions: Vec<String>,
    /// The ARNs of the other principals, each denied `other_denials` times.
    pub others: Vec<String>,
    /// Every record, in the order CloudTrail wrote them: JSON texts.
    pub records: Vec<String>,
}

/// Services and read-only calls an enumeration tool tries (as enumerate-iam does).
const PROBED: &[(&str, &[&str])] = &[
    (
        "iam",
        &[
            "ListUsers",
            "ListRoles",
            "ListGroups",
            "ListPolicies",
            "GetAccountSummary",
            "GetAccountAuthorizationDetails",
            "ListAccessKeys",
            "ListMFADevices",
            "ListInstanceProfiles",
            "GetCredentialReport",
            "ListServerCertificates",
            "ListSAMLProviders",
        ],
    ),
    (
        "ec2",
        &[
            "DescribeInstances",
            "DescribeVolumes",
            "DescribeSnapshots",
            "DescribeImages",
            "DescribeSecurityGroups",
            "DescribeVpcs",
            "DescribeSubnets",
            "DescribeKeyPairs",
            "DescribeAddresses",
            "DescribeRouteTables",
            "DescribeNetworkInterfaces",
            "DescribeLaunchTemplates",
        ],
    ),
    (
        "s3",
        &[
            "ListBuckets",
            "GetBucketPolicy",
            "GetBucketAcl",
            "GetBucketLocation",
            "GetBucketLogging",
            "GetBucketVersioning",
            "GetBucketEncryption",
            "GetBucketTagging",
        ],
    ),
    (
        "lambda",
        &[
            "ListFunctions20150331",
            "ListLayers",
            "ListEventSourceMappings",
            "GetAccountSettings",
            "ListAliases20150331",
        ],
    ),
    (
        "rds",
        &[
            "DescribeDBInstances",
            "DescribeDBClusters",
            "DescribeDBSnapshots",
            "DescribeDBSubnetGroups",
            "DescribeEventSubscriptions",
        ],
    ),
    (
        "dynamodb",
        &[
            "ListTables",
            "ListBackups",
            "ListGlobalTables",
            "DescribeLimits",
            "ListStreams",
        ],
    ),
    (
        "sns",
        &[
            "ListTopics",
            "ListSubscriptions",
            "ListPlatformApplications",
            "GetSMSAttributes",
        ],
    ),
    ("sqs", &["ListQueues", "ListDeadLetterSourceQueues"]),
    (
        "kms",
        &[
            "ListKeys",
            "ListAliases",
            "ListGrants",
            "DescribeCustomKeyStores",
        ],
    ),
    (
        "cloudtrail",
        &[
            "DescribeTrails",
            "ListTrails",
            "GetTrailStatus",
            "LookupEvents",
            "ListPublicKeys",
        ],
    ),
    (
        "logs",
        &[
            "DescribeLogGroups",
            "DescribeDestinations",
            "DescribeExportTasks",
            "DescribeMetricFilters",
            "DescribeResourcePolicies",
        ],
    ),
    ("secretsmanager", &["ListSecrets", "GetResourcePolicy"]),
    (
        "ssm",
        &[
            "DescribeParameters",
            "ListDocuments",
            "DescribeInstanceInformation",
            "ListCommands",
        ],
    ),
    (
        "cloudformation",
        &[
            "ListStacks",
            "DescribeStacks",
            "ListExports",
            "ListStackSets",
        ],
    ),
    (
        "ecr",
        &[
            "DescribeRepositories",
            "GetAuthorizationToken",
            "DescribeRegistry",
        ],
    ),
    (
        "ecs",
        &["ListClusters", "ListTaskDefinitions", "DescribeClusters"],
    ),
    ("eks", &["ListClusters", "ListNodegroups"]),
    (
        "elasticloadbalancing",
        &["DescribeLoadBalancers", "DescribeTargetGroups"],
    ),
    (
        "autoscaling",
        &[
            "DescribeAutoScalingGroups",
            "DescribeLaunchConfigurations",
            "DescribePolicies",
        ],
    ),
    (
        "route53",
        &["ListHostedZones", "ListHealthChecks", "GetHostedZoneCount"],
    ),
    (
        "cloudfront",
        &["ListDistributions2020_05_31", "ListOriginAccessControls"],
    ),
    ("sts", &["GetSessionToken", "GetFederationToken"]),
    (
        "organizations",
        &[
            "DescribeOrganization",
            "ListAccounts",
            "ListRoots",
            "ListPolicies",
        ],
    ),
    ("guardduty", &["ListDetectors", "ListFindings"]),
    (
        "config",
        &[
            "DescribeConfigRules",
            "DescribeConfigurationRecorders",
            "DescribeDeliveryChannels",
        ],
    ),
    (
        "elasticache",
        &["DescribeCacheClusters", "DescribeReplicationGroups"],
    ),
    (
        "redshift",
        &["DescribeClusters", "DescribeClusterSnapshots"],
    ),
    ("glue", &["GetDatabases", "GetJobs", "GetCrawlers"]),
    ("athena", &["ListWorkGroups", "ListDataCatalogs"]),
    ("kinesis", &["ListStreams", "DescribeLimits"]),
    ("events", &["ListRules", "ListEventBuses"]),
    ("states", &["ListStateMachines", "ListActivities"]),
    (
        "apigateway",
        &["GetRestApis", "GetDomainNames", "GetApiKeys"],
    ),
    ("codebuild", &["ListProjects", "ListBuilds"]),
    ("codecommit", &["ListRepositories"]),
];

/// A probe of `repeats` passes over every probed action in each of `regions`, by the corpus's
/// exposed IAM user, with each of `others` denied `other_denials` times along the way.
pub fn permission_probe(
    regions: &[&str],
    repeats: usize,
    others: usize,
    other_denials: usize,
) -> Probe {
    let base = crate::events::corpus_denial();
    let attacker = base["userIdentity"]["arn"]
        .as_str()
        .expect("an ARN")
        .to_owned();
    let account = base["recipientAccountId"]
        .as_str()
        .expect("an account")
        .to_owned();
    let other_arns: Vec<String> = (0..others)
        .map(|i| format!("arn:aws:iam::{account}:user/colleague-{i}"))
        .collect();
    let mut records = Vec::new();
    let mut actions = Vec::new();
    let mut sequence = 0u64;
    let record = |arn: &str, service: &str, action: &str, region: &str, sequence: u64| {
        let mut denial = base.clone();
        let name = arn.rsplit('/').next().unwrap_or(arn);
        let iam_action = format!(
            "{service}:{}",
            action.trim_end_matches(|c: char| c.is_ascii_digit() || c == '_')
        );
        denial["userIdentity"]["arn"] = json!(arn);
        denial["userIdentity"]["userName"] = json!(name);
        denial["eventSource"] = json!(format!("{service}.amazonaws.com"));
        denial["eventName"] = json!(action);
        denial["awsRegion"] = json!(region);
        denial["errorMessage"] = json!(format!(
            "User: {arn} is not authorized to perform: {iam_action} on resource: * because no identity-based policy allows the {iam_action} action"
        ));
        // About 30 calls a second, as enumerate-iam makes them.
        let second = sequence / 30;
        denial["eventTime"] = json!(format!(
            "2024-06-02T20:{:02}:{:02}Z",
            16 + second / 60,
            second % 60
        ));
        denial["eventID"] = json!(format!("57b719ad-f2fa-4d18-bd84-{sequence:012x}"));
        denial["requestID"] = json!(format!("ea7dbdf9-6c03-421e-abf4-{sequence:012x}"));
        serde_json::to_string(&denial).expect("a record serialises")
    };
    let other_every =
        (PROBED.iter().map(|(_, a)| a.len()).sum::<usize>() * regions.len() * repeats)
            / (others * other_denials).max(1);
    let mut other_next = 0;
    for _ in 0..repeats {
        for region in regions {
            for (service, calls) in PROBED {
                for action in *calls {
                    if !actions.contains(&action.to_string()) {
                        actions.push(action.to_string());
                    }
                    records.push(record(&attacker, service, action, region, sequence));
                    sequence += 1;
                    if others > 0
                        && (sequence as usize).is_multiple_of(other_every.max(1))
                        && other_next < others * other_denials
                    {
                        let arn = &other_arns[other_next % others];
                        records.push(record(arn, "s3", "GetObject", "us-east-1", sequence));
                        // Every record its own event ID, as CloudTrail writes them.
                        sequence += 1;
                        other_next += 1;
                    }
                }
            }
        }
    }
    Probe {
        attacker,
        actions,
        regions: regions.iter().map(|r| r.to_string()).collect(),
        others: other_arns,
        records,
    }
}

/// The records split into CloudWatch Logs deliveries of at most `per_delivery` log events.
pub fn deliveries(records: &[String], per_delivery: usize) -> Vec<Value> {
    records
        .chunks(per_delivery.max(1))
        .map(|chunk| awslogs_event(&data_message(chunk)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fuzz_seeds_feed_every_fuzz_target_and_no_other() {
        let manifest = include_str!("../../../fuzz/Cargo.toml");
        let mut targets: Vec<&str> = manifest
            .lines()
            .filter_map(|line| line.strip_prefix("name = \""))
            .filter_map(|rest| rest.strip_suffix('"'))
            .filter(|name| *name != "activity-aware-fuzz")
            .collect();
        targets.sort_unstable();
        let mut seeded: Vec<&str> = fuzz_seeds().iter().map(|(target, ..)| *target).collect();
        seeded.sort_unstable();
        seeded.dedup();
        assert_eq!(seeded, targets);
    }
}
