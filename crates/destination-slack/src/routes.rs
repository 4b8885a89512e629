//! Where each Message goes: the stack's webhook, or a webhook of its own for an account or a
//! channel. A Slack app's incoming webhook posts to the one channel it was made for (Slack
//! ignores `channel` in the body), so a channel of its own needs a webhook of its own.
//!
//! SLACK_WEBHOOK_ROUTES holds, encrypted, `selector=url` pairs separated by commas:
//! `account:111122223333=https://hooks.slack.com/services/...` sends that account's Messages
//! there, `ou:ou-ab12-cdefgh34=https://...` the Messages of the accounts of that
//! organizational unit (and the units below it; a root `r-ab12` too),
//! `channel:#prod-alerts=https://...` sends Messages tagged
//! `slack-preferred-channel: #prod-alerts` there. A channel route wins over an account route,
//! an account route over a unit's (of two units, the one with fewer accounts: the nearer);
//! everything else goes to the stack's webhook.

use std::collections::HashMap;

use crate::webhook::{SlackWebhook, WEBHOOK_ROUTES, WebhookUrl, slack_webhook};
use activity_aware_delivery::{ConfigError, PaceLimit, RetryPolicy};
use activity_aware_message::{Field, Message, SLACK_PREFERRED_CHANNEL_TAG};

/// The fields that say which account an event happened in, in the order they are read. (Not
/// `User Account ID`: that is the caller's, which may be anyone's.)
pub const ROUTED_ACCOUNT_FIELDS: [&str; 2] = ["Recipient Account ID", "Account"];

/// What a route matches.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Selector {
    /// Messages about this account (12 digits).
    Account(String),
    /// Messages about the accounts of this organizational unit or root, at any depth.
    Unit(String),
    /// Messages whose `slack-preferred-channel` tag has this value.
    Channel(String),
}

impl std::fmt::Display for Selector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Selector::Account(id) => write!(f, "account:{id}"),
            Selector::Unit(id) => write!(f, "ou:{id}"),
            Selector::Channel(channel) => write!(f, "channel:{channel}"),
        }
    }
}

/// The routes, in the order given.
#[derive(Debug, Clone, Default)]
pub struct WebhookRoutes(Vec<(Selector, WebhookUrl)>);

impl WebhookRoutes {
    /// Reads `selector=url` pairs separated by commas (empty text: no routes). Errors name the
    /// route by position and selector, never by its URL.
    pub fn parse(plaintext: &str) -> Result<WebhookRoutes, ConfigError> {
        let mut routes: Vec<(Selector, WebhookUrl)> = Vec::new();
        let entries = plaintext
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty());
        for (index, entry) in entries.enumerate() {
            let bad = |problem: String| ConfigError::Invalid {
                secret: WEBHOOK_ROUTES,
                problem: format!("route {}: {problem}", index + 1),
            };
            let (selector, url) = entry.split_once('=').ok_or_else(|| {
                bad(
                    "is not selector=https://... (account:ID=URL, ou:ID=URL or channel:NAME=URL)"
                        .into(),
                )
            })?;
            let selector = parse_selector(selector.trim()).map_err(bad)?;
            let url = WebhookUrl::parse(url)
                .map_err(|problem| bad(format!("the webhook of {selector} {problem}")))?;
            if routes.iter().any(|(known, _)| *known == selector) {
                return Err(bad(format!("{selector} is routed twice")));
            }
            routes.push((selector, url));
        }
        Ok(WebhookRoutes(routes))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// An organizational unit's ID (`ou-` root part, `-`, unit part) or a root's (`r-`).
fn is_unit_id(id: &str) -> bool {
    let lower_digits = |part: &str, range: std::ops::RangeInclusive<usize>| {
        range.contains(&part.len())
            && part
                .bytes()
                .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit())
    };
    if let Some(rest) = id.strip_prefix("ou-") {
        return rest
            .split_once('-')
            .is_some_and(|(root, unit)| lower_digits(root, 4..=32) && lower_digits(unit, 8..=32));
    }
    id.strip_prefix("r-")
        .is_some_and(|root| lower_digits(root, 4..=32))
}

fn parse_selector(text: &str) -> Result<Selector, String> {
    if let Some(id) = text.strip_prefix("account:") {
        let id = id.trim();
        if id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(Selector::Account(id.to_owned()));
        }
        return Err(format!("{id:?} is not a 12-digit account ID"));
    }
    if let Some(id) = text.strip_prefix("ou:") {
        let id = id.trim();
        if is_unit_id(id) {
            return Ok(Selector::Unit(id.to_owned()));
        }
        return Err(format!(
            "{id:?} is not an organizational unit (ou-...) or root (r-...) ID"
        ));
    }
    if let Some(channel) = text.strip_prefix("channel:") {
        let channel = channel.trim();
        if !channel.is_empty() {
            return Ok(Selector::Channel(channel.to_owned()));
        }
        return Err("the channel is empty".into());
    }
    Err("a route starts with account:, ou: or channel:".into())
}

/// What the stack's channel is told when the routes cannot be used.
pub fn routes_notice(problem: &str) -> Message {
    Message::new(
        "Activity Aware IDS: webhook routes not in use; what they would route is posted here",
        vec![
            Field::text("Problem", problem),
            Field::text(
                "Until it is fixed",
                "what those routes would send elsewhere comes to this webhook; fix SlackWebhookRoutes (SLACK_WEBHOOK_ROUTES)",
            ),
        ],
    )
}

/// The account a Message is about, when it says.
pub fn account_of(message: &Message) -> Option<&str> {
    ROUTED_ACCOUNT_FIELDS
        .iter()
        .find_map(|key| crate::layout::field_text(message, key))
}

/// The webhooks a container posts to, each paced on its own (Slack's limit is per webhook).
/// Routes to the same URL share one webhook, and so one pace.
#[derive(Debug)]
pub struct Webhooks {
    /// The stack's webhook first, then one per distinct routed URL, each with its name in logs.
    hooks: Vec<(String, SlackWebhook)>,
    by_channel: HashMap<String, usize>,
    by_account: HashMap<String, usize>,
    /// The units routed, and their webhooks; their accounts join `by_account` once read.
    by_unit: Vec<(String, usize)>,
    /// Why the routes are not in use, to post to the stack's webhook once.
    notice: std::sync::Mutex<Option<String>>,
}

impl Webhooks {
    pub fn new(
        http: reqwest::Client,
        default: WebhookUrl,
        routes: WebhookRoutes,
        policy: RetryPolicy,
        pace: PaceLimit,
    ) -> Webhooks {
        let mut urls: Vec<(String, WebhookUrl)> = vec![("the stack's webhook".into(), default)];
        let mut by_channel = HashMap::new();
        let mut by_account = HashMap::new();
        let mut by_unit = Vec::new();
        for (selector, url) in routes.0 {
            let index = match urls.iter().position(|(_, known)| known.same_as(&url)) {
                Some(index) => index,
                None => {
                    urls.push((format!("the webhook of {selector}"), url));
                    urls.len() - 1
                }
            };
            match selector {
                Selector::Account(id) => {
                    by_account.insert(id, index);
                }
                Selector::Unit(id) => by_unit.push((id, index)),
                Selector::Channel(channel) => {
                    by_channel.insert(channel, index);
                }
            };
        }
        let hooks = urls
            .into_iter()
            .map(|(name, url)| (name, slack_webhook(http.clone(), url, policy.clone(), pace)))
            .collect();
        Webhooks {
            hooks,
            by_channel,
            by_account,
            by_unit,
            notice: std::sync::Mutex::new(None),
        }
    }

    /// The organizational units routed, to read the accounts of.
    pub fn units(&self) -> Vec<String> {
        self.by_unit.iter().map(|(unit, _)| unit.clone()).collect()
    }

    /// Routes each unit's accounts (as the organisation says now) to the unit's webhook, unless
    /// the account has a route of its own. Each unit's accounts are its own (a routed unit
    /// inside it keeps its accounts); should an account still be given twice, the unit with
    /// fewer accounts wins.
    pub fn with_unit_accounts(mut self, accounts: &[(String, Vec<String>)]) -> Webhooks {
        let mut nearest: HashMap<&str, (usize, usize)> = HashMap::new();
        for (unit, index) in &self.by_unit {
            let Some((_, members)) = accounts.iter().find(|(read, _)| read == unit) else {
                continue;
            };
            for account in members {
                let candidate = (members.len(), *index);
                nearest
                    .entry(account)
                    .and_modify(|known| {
                        if candidate.0 < known.0 {
                            *known = candidate;
                        }
                    })
                    .or_insert(candidate);
            }
        }
        for (account, (_, index)) in nearest {
            self.by_account.entry(account.to_owned()).or_insert(index);
        }
        self
    }

    /// A problem to tell the stack's channel about, once (added to any told before).
    pub fn with_notice(self, problem: Option<String>) -> Webhooks {
        let Some(problem) = problem else {
            return self;
        };
        {
            let mut notice = self.notice.lock().expect("never poisoned");
            *notice = Some(match notice.take() {
                Some(earlier) => format!("{earlier}; {problem}"),
                None => problem,
            });
        }
        self
    }

    /// Posts the notice, if there is one, to the stack's webhook; a notice that cannot be posted
    /// is logged and tried again on the next invocation.
    pub async fn post_notice(&self, deadline: tokio::time::Instant) {
        let Some(problem) = self.notice.lock().expect("never poisoned").take() else {
            return;
        };
        let notice = routes_notice(&problem);
        let body = crate::slack_body(&notice, &crate::layout::AccountNames::default());
        if let Err(error) = self.webhook(0).post(&body, deadline).await {
            tracing::error!(%error, "the notice about the webhook routes was not posted");
            *self.notice.lock().expect("never poisoned") = Some(problem);
        }
    }

    /// Which webhook a Message goes to: its channel's, else its account's, else the stack's.
    pub fn route(&self, message: &Message) -> usize {
        let by_channel = message
            .tag(SLACK_PREFERRED_CHANNEL_TAG)
            .and_then(|channel| self.by_channel.get(channel));
        let by_account = || account_of(message).and_then(|id| self.by_account.get(id));
        by_channel.or_else(by_account).copied().unwrap_or(0)
    }

    pub fn len(&self) -> usize {
        self.hooks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hooks.is_empty()
    }

    pub fn webhook(&self, index: usize) -> &SlackWebhook {
        &self.hooks[index].1
    }

    /// What logs call it (never its URL).
    pub fn name(&self, index: usize) -> &str {
        &self.hooks[index].0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn message(fields: Value, tags: Value) -> Message {
        Message::from_value(json!({"subject": "s", "fields": fields, "metadata": {}, "tags": tags}))
            .unwrap()
    }

    fn url(path: &str) -> WebhookUrl {
        WebhookUrl::parse(&format!("https://hooks.example.com/services/{path}")).unwrap()
    }

    fn webhooks(routes: &str) -> Webhooks {
        Webhooks::new(
            reqwest::Client::new(),
            url("default"),
            WebhookRoutes::parse(routes).unwrap(),
            RetryPolicy::default(),
            PaceLimit::default(),
        )
    }

    #[test]
    fn routes_are_read_strictly_and_never_name_their_urls() {
        let routes = WebhookRoutes::parse(
            " account:111122223333=https://hooks.example.com/services/T/B/prod ,channel:#oncall=https://hooks.example.com/services/T/B/oncall,",
        )
        .unwrap();
        assert_eq!(routes.0.len(), 2);
        assert_eq!(routes.0[0].0, Selector::Account("111122223333".into()));
        assert_eq!(routes.0[1].0, Selector::Channel("#oncall".into()));
        assert!(WebhookRoutes::parse("").unwrap().is_empty());

        for (text, expected) in [
            (
                "account:1234=https://h.example.com/s3cr3t",
                "route 1: \"1234\" is not a 12-digit account ID",
            ),
            (
                "team:x=https://h.example.com/s3cr3t",
                "route 1: a route starts with account:, ou: or channel:",
            ),
            (
                "ou:ou-ab12=https://h.example.com/s3cr3t",
                "route 1: \"ou-ab12\" is not an organizational unit (ou-...) or root (r-...) ID",
            ),
            (
                "channel:#a=https://h.example.com/ok,channel:=https://h.example.com/s3cr3t",
                "route 2: the channel is empty",
            ),
            (
                "channel:#a=http://h.example.com/s3cr3t",
                "route 1: the webhook of channel:#a must start with https://",
            ),
            (
                "channel:#a https://h.example.com/s3cr3t",
                "route 1: is not selector=https://",
            ),
            (
                "account:111122223333=https://h.example.com/s3cr3t,account:111122223333=https://h.example.com/s3cr3t2",
                "route 2: account:111122223333 is routed twice",
            ),
        ] {
            let error = WebhookRoutes::parse(text).unwrap_err().to_string();
            assert!(error.starts_with("SLACK_WEBHOOK_ROUTES, "), "{error}");
            assert!(error.contains(expected), "{text:?}: {error}");
            assert!(!error.contains("s3cr3t"), "the error shows a URL: {error}");
        }
    }

    #[test]
    fn a_channel_route_wins_then_the_account_then_the_stacks_webhook() {
        let hooks = webhooks(
            "account:111122223333=https://hooks.example.com/services/prod,channel:#oncall=https://hooks.example.com/services/oncall",
        );
        assert_eq!(hooks.len(), 3);
        let prod = message(
            json!([{"key": "Recipient Account ID", "value": "111122223333"}]),
            json!([]),
        );
        let prod_by_eventbridge = message(
            json!([{"key": "Account", "value": "111122223333"}]),
            json!([]),
        );
        let other = message(
            json!([{"key": "Recipient Account ID", "value": "444455556666"}]),
            json!([]),
        );
        let oncall = message(
            json!([{"key": "Recipient Account ID", "value": "111122223333"}]),
            json!([{"key": "slack-preferred-channel", "value": "#oncall"}]),
        );
        let unknown_channel = message(
            json!([{"key": "Recipient Account ID", "value": "444455556666"}]),
            json!([{"key": "slack-preferred-channel", "value": "#elsewhere"}]),
        );
        // The caller's account is not where the event happened.
        let caller_only = message(
            json!([{"key": "User Account ID", "value": "111122223333"}]),
            json!([]),
        );
        assert_eq!(
            hooks.name(hooks.route(&prod)),
            "the webhook of account:111122223333"
        );
        assert_eq!(hooks.route(&prod_by_eventbridge), hooks.route(&prod));
        assert_eq!(hooks.route(&other), 0);
        assert_eq!(
            hooks.name(hooks.route(&oncall)),
            "the webhook of channel:#oncall"
        );
        assert_eq!(hooks.route(&unknown_channel), 0);
        assert_eq!(hooks.route(&caller_only), 0);
        assert_eq!(hooks.name(0), "the stack's webhook");
    }

    #[test]
    fn a_units_accounts_go_to_its_webhook_unless_routed_nearer() {
        let hooks = webhooks(
            "ou:r-ab12=https://hooks.example.com/services/root,ou:ou-ab12-prod0001=https://hooks.example.com/services/prod,account:111122223333=https://hooks.example.com/services/own",
        )
        .with_unit_accounts(&[
            (
                "r-ab12".into(),
                vec!["111122223333".into(), "222233334444".into(), "333344445555".into()],
            ),
            ("ou-ab12-prod0001".into(), vec!["111122223333".into(), "222233334444".into()]),
        ]);
        assert_eq!(hooks.units(), ["r-ab12", "ou-ab12-prod0001"]);
        let of = |account: &str| {
            let message = message(json!([{"key": "Account", "value": account}]), json!([]));
            hooks.name(hooks.route(&message)).to_owned()
        };
        assert_eq!(of("111122223333"), "the webhook of account:111122223333");
        assert_eq!(of("222233334444"), "the webhook of ou:ou-ab12-prod0001");
        assert_eq!(of("333344445555"), "the webhook of ou:r-ab12");
        assert_eq!(of("999988887777"), "the stack's webhook");
        // A unit that could not be read routes nothing: its accounts go to the stack's webhook.
        let unread = webhooks("ou:ou-ab12-prod0001=https://hooks.example.com/services/prod")
            .with_unit_accounts(&[]);
        let message = message(
            json!([{"key": "Account", "value": "222233334444"}]),
            json!([]),
        );
        assert_eq!(unread.route(&message), 0);
    }

    #[test]
    fn routes_to_one_url_share_one_webhook_and_its_pace() {
        let hooks = webhooks(
            "account:111122223333=https://hooks.example.com/services/shared,account:444455556666=https://hooks.example.com/services/shared,channel:#x=https://hooks.example.com/services/default",
        );
        assert_eq!(hooks.len(), 2, "one routed webhook beside the stack's");
        let a = message(
            json!([{"key": "Account", "value": "111122223333"}]),
            json!([]),
        );
        let b = message(
            json!([{"key": "Account", "value": "444455556666"}]),
            json!([]),
        );
        let x = message(
            json!([]),
            json!([{"key": "slack-preferred-channel", "value": "#x"}]),
        );
        assert_eq!(hooks.route(&a), hooks.route(&b));
        assert_eq!(hooks.route(&x), 0, "the same URL as the stack's webhook");
    }
}
