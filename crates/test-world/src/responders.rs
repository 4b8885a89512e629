//! What the responders act on, in moto: security groups and their rules (EC2), users and roles
//! (IAM), and the events and Messages that name them, made from the corpus's real records.

use aws_query::{Element, QueryClient, QueryError, Service};
use serde_json::{Value, json};

use crate::events::{
    corpus_denial, corpus_public_ingress, eventbridge_api_call, message_json_of_record,
};
use crate::{LambdaProcess, MotoServer, RuntimeApi, SnsCapture};

/// The account moto plays.
pub const MOTO_ACCOUNT: &str = "123456789012";

/// A responder's world: moto, its topic, a queue that sees what the topic publishes, and the
/// account's EC2 and IAM.
pub struct ResponderWorld {
    pub moto: MotoServer,
    pub topic: String,
    pub capture: SnsCapture,
    pub accounts: Accounts,
}

impl ResponderWorld {
    pub async fn start() -> ResponderWorld {
        let moto = MotoServer::start();
        let topic = moto.create_topic("ids-SNSTopic").await;
        let capture = moto.capture_queue(&topic).await;
        let accounts = Accounts::of(&moto).await;
        ResponderWorld {
            moto,
            topic,
            capture,
            accounts,
        }
    }

    /// The responder's binary on a Runtime API of its own, with moto's environment, the
    /// topic (`SNS_TOPIC`) and `env`.
    pub fn spawn(&self, binary: &str, env: Vec<(String, String)>) -> (RuntimeApi, LambdaProcess) {
        let api = RuntimeApi::start();
        let mut full = self.moto.lambda_env();
        full.push(("SNS_TOPIC".into(), self.topic.clone()));
        full.extend(env);
        let process = LambdaProcess::spawn(binary, &api, full);
        (api, process)
    }

    /// The next `count` Messages the topic published, as JSON.
    pub async fn published(&self, count: usize) -> Vec<Value> {
        self.capture
            .receive(count, std::time::Duration::from_secs(30))
            .await
            .iter()
            .map(|body| serde_json::from_str(body).expect("test-world: a JSON Message"))
            .collect()
    }
}

/// A Message's field, when its value is text.
pub fn field<'a>(message: &'a Value, key: &str) -> Option<&'a str> {
    message["fields"]
        .as_array()?
        .iter()
        .find(|field| field["key"] == key)
        .and_then(|field| field["value"].as_str())
}

/// A Message's first tag of this key.
pub fn tag<'a>(message: &'a Value, key: &str) -> Option<&'a str> {
    message["tags"]
        .as_array()?
        .iter()
        .find(|tag| tag["key"] == key)
        .and_then(|tag| tag["value"].as_str())
}

/// EC2 and IAM in a moto, for setting up and reading back what the responders act on.
pub struct Accounts {
    ec2: QueryClient,
    iam: QueryClient,
}

fn owned(parameters: &[(&str, &str)]) -> Vec<(String, String)> {
    parameters
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect()
}

impl Accounts {
    pub async fn of(moto: &MotoServer) -> Accounts {
        let config = moto.sdk_config().await;
        Accounts {
            ec2: QueryClient::new(&config, Service::Ec2).expect("test-world: an EC2 client"),
            iam: QueryClient::new(&config, Service::Iam).expect("test-world: an IAM client"),
        }
    }

    /// EC2 and IAM of a member account of moto's organisation, in `region`, as the role
    /// `member.yaml` makes there: moto keeps each account's resources apart, and credentials of
    /// a role it assumed act in the role's account.
    pub async fn member(moto: &MotoServer, account: &str, region: &str, role: &str) -> Accounts {
        let config = moto.sdk_config().await;
        let credentials = aws_query::assume_role(
            &config,
            region,
            &format!("arn:aws:iam::{account}:role/{role}"),
            "test-world-external-id",
            "test-world",
        )
        .await
        .unwrap_or_else(|error| panic!("test-world: AssumeRole in {account}: {error}"));
        let client = |service| {
            QueryClient::in_region(&config, service, region)
                .expect("test-world: a client")
                .with_credentials(credentials.clone())
        };
        Accounts {
            ec2: client(Service::Ec2),
            iam: client(Service::Iam),
        }
    }

    async fn ec2(&self, action: &str, parameters: &[(&str, &str)]) -> Element {
        self.ec2
            .call(action, &owned(parameters))
            .await
            .unwrap_or_else(|error| panic!("test-world: EC2 {action}: {error}"))
    }

    async fn iam(&self, action: &str, parameters: &[(&str, &str)]) -> Result<Element, QueryError> {
        self.iam.call(action, &owned(parameters)).await
    }

    /// A security group of the default VPC; its ID.
    pub async fn create_group(&self, name: &str) -> String {
        let answer = self
            .ec2(
                "CreateSecurityGroup",
                &[("GroupName", name), ("GroupDescription", "test-world")],
            )
            .await;
        answer.child_text("groupId").expect("a group ID").to_owned()
    }

    pub async fn tag_group(&self, group: &str, key: &str, value: &str) {
        self.ec2(
            "CreateTags",
            &[
                ("ResourceId.1", group),
                ("Tag.1.Key", key),
                ("Tag.1.Value", value),
            ],
        )
        .await;
    }

    /// Opens `protocol/port` to `range` (IPv4 or IPv6) on the group.
    pub async fn open(&self, group: &str, protocol: &str, port: i64, range: &str) {
        let (list, key) = if range.contains(':') {
            ("Ipv6Ranges", "CidrIpv6")
        } else {
            ("IpRanges", "CidrIp")
        };
        let port = port.to_string();
        let range_name = format!("IpPermissions.1.{list}.1.{key}");
        self.ec2(
            "AuthorizeSecurityGroupIngress",
            &[
                ("GroupId", group),
                ("IpPermissions.1.IpProtocol", protocol),
                ("IpPermissions.1.FromPort", &port),
                ("IpPermissions.1.ToPort", &port),
                (&range_name, range),
            ],
        )
        .await;
    }

    /// A managed prefix list of these ranges; its ID.
    pub async fn create_prefix_list(&self, name: &str, ranges: &[&str]) -> String {
        let mut parameters = vec![
            ("PrefixListName".to_owned(), name.to_owned()),
            ("AddressFamily".to_owned(), "IPv4".to_owned()),
            ("MaxEntries".to_owned(), "10".to_owned()),
        ];
        for (index, range) in ranges.iter().enumerate() {
            parameters.push((format!("Entry.{}.Cidr", index + 1), (*range).to_owned()));
        }
        self.ec2
            .call("CreateManagedPrefixList", &parameters)
            .await
            .unwrap_or_else(|error| panic!("test-world: EC2 CreateManagedPrefixList: {error}"))
            .find("prefixListId")
            .map(|id| id.text().to_owned())
            .expect("test-world: a prefix list ID")
    }

    /// Opens `protocol/port` to a prefix list on the group.
    pub async fn open_to_prefix_list(&self, group: &str, protocol: &str, port: i64, list: &str) {
        let port = port.to_string();
        self.ec2(
            "AuthorizeSecurityGroupIngress",
            &[
                ("GroupId", group),
                ("IpPermissions.1.IpProtocol", protocol),
                ("IpPermissions.1.FromPort", &port),
                ("IpPermissions.1.ToPort", &port),
                ("IpPermissions.1.PrefixListIds.1.PrefixListId", list),
            ],
        )
        .await;
    }

    /// The group's ingress rules: (rule ID, port, range).
    pub async fn ingress_rules(&self, group: &str) -> Vec<(String, i64, String)> {
        let answer = self
            .ec2(
                "DescribeSecurityGroupRules",
                &[("Filter.1.Name", "group-id"), ("Filter.1.Value.1", group)],
            )
            .await;
        answer
            .items("securityGroupRuleSet")
            .filter(|rule| rule.child_text("isEgress") == Some("false"))
            .map(|rule| {
                let text = |name: &str| rule.child_text(name).unwrap_or_default().to_owned();
                let range = ["cidrIpv4", "cidrIpv6", "prefixListId"]
                    .iter()
                    .map(|name| text(name))
                    .find(|range| !range.is_empty())
                    .unwrap_or_default();
                (
                    text("securityGroupRuleId"),
                    text("fromPort").parse().unwrap_or(-1),
                    range,
                )
            })
            .collect()
    }

    pub async fn create_user(&self, name: &str) {
        self.iam("CreateUser", &[("UserName", name)])
            .await
            .unwrap_or_else(|error| panic!("test-world: CreateUser {name}: {error}"));
    }

    pub async fn create_role(&self, name: &str) {
        let trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]});
        self.iam(
            "CreateRole",
            &[
                ("RoleName", name),
                ("AssumeRolePolicyDocument", &trust.to_string()),
            ],
        )
        .await
        .unwrap_or_else(|error| panic!("test-world: CreateRole {name}: {error}"));
    }

    /// The ARNs of the managed policies attached to the user.
    pub async fn attached_policies(&self, user: &str) -> Vec<String> {
        self.iam("ListAttachedUserPolicies", &[("UserName", user)])
            .await
            .unwrap_or_else(|error| panic!("test-world: ListAttachedUserPolicies {user}: {error}"))
            .find("AttachedPolicies")
            .into_iter()
            .flat_map(|list| list.children_named("member"))
            .filter_map(|policy| policy.child_text("PolicyArn").map(str::to_owned))
            .collect()
    }

    /// The ARNs of the managed policies attached to the role.
    pub async fn attached_role_policies(&self, role: &str) -> Vec<String> {
        self.iam("ListAttachedRolePolicies", &[("RoleName", role)])
            .await
            .unwrap_or_else(|error| panic!("test-world: ListAttachedRolePolicies {role}: {error}"))
            .find("AttachedPolicies")
            .into_iter()
            .flat_map(|list| list.children_named("member"))
            .filter_map(|policy| policy.child_text("PolicyArn").map(str::to_owned))
            .collect()
    }

    /// The tags of a user (`user`) or role (`role`), as (key, value), sorted.
    pub async fn tags(&self, kind: &str, name: &str) -> Vec<(String, String)> {
        let (action, parameter) = match kind {
            "user" => ("ListUserTags", "UserName"),
            _ => ("ListRoleTags", "RoleName"),
        };
        let mut tags: Vec<(String, String)> = self
            .iam(action, &[(parameter, name)])
            .await
            .unwrap_or_else(|error| panic!("test-world: {action} {name}: {error}"))
            .find("Tags")
            .into_iter()
            .flat_map(|list| list.children_named("member"))
            .filter_map(|tag| {
                Some((
                    tag.child_text("Key")?.to_owned(),
                    tag.child_text("Value")?.to_owned(),
                ))
            })
            .collect();
        tags.sort();
        tags
    }

    /// Detaches a managed policy from a user, as a person releasing it would.
    pub async fn detach_user_policy(&self, user: &str, policy: &str) {
        self.iam(
            "DetachUserPolicy",
            &[("UserName", user), ("PolicyArn", policy)],
        )
        .await
        .unwrap_or_else(|error| panic!("test-world: DetachUserPolicy {user}: {error}"));
    }

    /// A customer managed policy, as the stack makes its contained-session policy; its ARN.
    pub async fn create_policy(&self, name: &str, document: &str) -> String {
        self.iam(
            "CreatePolicy",
            &[("PolicyName", name), ("PolicyDocument", document)],
        )
        .await
        .unwrap_or_else(|error| panic!("test-world: CreatePolicy {name}: {error}"))
        .find("Arn")
        .map(|arn| arn.text().to_owned())
        .expect("test-world: a policy ARN")
    }
}

/// The corpus's real opening of port 22 (Stratus Red Team's), rewritten to say it opened these
/// rules on this group, as EventBridge delivers it. Each rule is `(rule ID, protocol, port,
/// range)`: the record's response names the rules when every one has an ID, and only its
/// request does otherwise (as older records).
pub fn public_ingress_event(group: &str, rules: &[(Option<&str>, &str, i64, &str)]) -> Value {
    let mut record = corpus_public_ingress();
    let permissions: Vec<Value> = rules
        .iter()
        .map(|(_, protocol, port, range)| {
            let mut permission = json!({"ipProtocol": protocol, "fromPort": port, "toPort": port});
            if range.contains(':') {
                permission["ipv6Ranges"] = json!({"items": [{"cidrIpv6": range}]});
            } else {
                permission["ipRanges"] = json!({"items": [{"cidrIp": range}]});
            }
            permission
        })
        .collect();
    record["requestParameters"] =
        json!({"groupId": group, "ipPermissions": {"items": permissions}});
    record["responseElements"] = if rules.iter().all(|(id, ..)| id.is_some()) {
        let items: Vec<Value> = rules
            .iter()
            .map(|(id, protocol, port, range)| {
                let key = if range.contains(':') {
                    "cidrIpv6"
                } else {
                    "cidrIpv4"
                };
                json!({"groupId": group, "securityGroupRuleId": id, "isEgress": false,
                    "ipProtocol": protocol, "fromPort": port, "toPort": port, key: range})
            })
            .collect();
        json!({"_return": true, "securityGroupRuleSet": {"items": items}})
    } else {
        json!({"_return": true})
    };
    record["awsRegion"] = json!("us-east-1");
    record["recipientAccountId"] = json!(MOTO_ACCOUNT);
    eventbridge_api_call(&record)
}

/// The same event as if it had happened in `account` and `region` and come through the
/// central bus (member stacks forward AWS's events unchanged).
pub fn rehomed(event: &Value, account: &str, region: &str) -> Value {
    let mut event = event.clone();
    event["account"] = json!(account);
    event["region"] = json!(region);
    event["detail"]["recipientAccountId"] = json!(account);
    event["detail"]["awsRegion"] = json!(region);
    event
}

/// Who made a denial, as CloudTrail records it.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    /// The principal's ARN: a user's, root's, or a role session's
    /// (`arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`).
    pub arn: &'a str,
    /// The access key the calls were made with (`AKIA…` for a user, `ASIA…` for a session).
    pub access_key: &'a str,
}

impl Caller<'_> {
    /// `userIdentity` as CloudTrail writes it: a session's principal ID is the role's ID and
    /// the session name (`AROA…:SESSION`).
    fn identity(&self) -> Value {
        let account = self.arn.split(':').nth(4).unwrap_or(MOTO_ACCOUNT);
        let name = self.arn.rsplit('/').next().unwrap_or_default();
        if let Some((role, session)) = self
            .arn
            .split_once(":assumed-role/")
            .and_then(|(_, rest)| rest.split_once('/'))
        {
            let role_id = format!("AROA{}", role.to_ascii_uppercase().replace('-', ""));
            return json!({"type": "AssumedRole", "principalId": format!("{role_id}:{session}"),
                "arn": self.arn, "accountId": account, "accessKeyId": self.access_key,
                "sessionContext": {"sessionIssuer": {"type": "Role", "principalId": role_id,
                    "arn": format!("arn:aws:iam::{account}:role/{role}"), "accountId": account, "userName": role},
                    "attributes": {"creationDate": "2026-12-03T09:00:00Z", "mfaAuthenticated": "false"}}});
        }
        if self.arn.ends_with(":root") {
            return json!({"type": "Root", "principalId": account, "arn": self.arn,
                "accountId": account, "accessKeyId": self.access_key});
        }
        json!({"type": "IAMUser", "principalId": format!("AIDA{}", name.to_ascii_uppercase()),
            "arn": self.arn, "accountId": account, "accessKeyId": self.access_key, "userName": name})
    }

    /// The principal ID CloudTrail records for it (`AROA…:SESSION` for a session).
    pub fn principal_id(&self) -> String {
        self.identity()["principalId"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

/// The corpus's real denial, made by `caller` at `time` in `region`, as CloudTrail records it
/// (`n` tells its event ID from its neighbours').
pub fn denial_record(caller: Caller<'_>, event: &str, region: &str, time: &str, n: usize) -> Value {
    let mut record = corpus_denial();
    record["eventName"] = json!(event);
    record["eventTime"] = json!(time);
    record["awsRegion"] = json!(region);
    record["recipientAccountId"] = json!(MOTO_ACCOUNT);
    record["eventID"] = json!(format!(
        "{:08x}-0000-4000-8000-{n:012}",
        caller.arn.bytes().fold(0u32, |hash, byte| hash
            .wrapping_mul(31)
            .wrapping_add(byte.into()))
    ));
    record["userIdentity"] = caller.identity();
    record
}

/// The Message a source publishes for a record.
pub fn denial_message(record: &Value) -> String {
    message_json_of_record(&record.to_string()).expect("test-world: a denial's Message")
}
