//! Slack's rules for an incoming-webhook body with Block Kit blocks, as a checker for tests:
//! Slack refuses a post that breaks them (400 invalid_blocks) or cuts its text.
//!
//! Rules checked (api.slack.com/reference/block-kit): at most 50 blocks; `text` at most 40,000
//! characters; each block a known type with its required keys; header: plain_text, at most 150;
//! section: `text` and/or `fields`, text at most 3,000, at most 10 fields of at most 2,000;
//! context: 1 to 10 elements (text objects or images); actions: 1 to 25 elements; button: text
//! plain_text at most 75, url at most 3,000, value at most 2,000, action_id at most 255;
//! divider: nothing else; text objects: `plain_text` or `mrkdwn` with a non-empty text.

use serde_json::Value;

pub const MAX_BLOCKS: usize = 50;
pub const MAX_TEXT_CHARS: usize = 40_000;

/// Every rule the body breaks, as readable lines; empty when Slack would take it.
pub fn problems(body: &Value) -> Vec<String> {
    let mut found = Vec::new();
    let Some(object) = body.as_object() else {
        return vec!["the body is not a JSON object".into()];
    };
    match object.get("text") {
        Some(Value::String(text)) => {
            let chars = text.chars().count();
            if chars > MAX_TEXT_CHARS {
                found.push(format!(
                    "text has {chars} characters (at most {MAX_TEXT_CHARS})"
                ));
            }
            if text.trim().is_empty() {
                found.push("text is empty".into());
            }
        }
        Some(_) => found.push("text is not a string".into()),
        None => found.push("no text (the notification and fallback)".into()),
    }
    let Some(blocks) = object.get("blocks") else {
        return found;
    };
    let Some(blocks) = blocks.as_array() else {
        found.push("blocks is not an array".into());
        return found;
    };
    if blocks.len() > MAX_BLOCKS {
        found.push(format!("{} blocks (at most {MAX_BLOCKS})", blocks.len()));
    }
    for (index, block) in blocks.iter().enumerate() {
        check_block(&format!("block {index}"), block, &mut found);
    }
    found
}

/// Panics listing every rule the body breaks.
pub fn assert_valid(body: &Value) {
    let found = problems(body);
    assert!(
        found.is_empty(),
        "Slack would refuse this body:\n- {}\n{}",
        found.join("\n- "),
        serde_json::to_string_pretty(body).unwrap_or_default()
    );
}

/// The post as a person sees it in Slack, as plain text: the app's name, the header, facts in
/// two columns, quotes and code as Slack sets them, small print, buttons in brackets. Slack's
/// escapes (`&lt;`, `&gt;`, `&amp;`) show as the characters they stand for.
pub fn render(body: &Value) -> String {
    const COLUMN: usize = 40;
    // Slack shows `*Label*` in bold; plain text shows the label.
    let unescape = |text: &str| {
        text.lines()
            .map(
                |line| match line.strip_prefix('*').and_then(|l| l.split_once('*')) {
                    Some((bold, rest)) => format!("{bold}{rest}"),
                    None => line.to_owned(),
                },
            )
            .collect::<Vec<_>>()
            .join("\n")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&")
    };
    let mut lines = Vec::new();
    if let Some(name) = body["username"].as_str() {
        lines.push(format!("{name}  [APP]"));
    }
    for block in body["blocks"].as_array().into_iter().flatten() {
        match block["type"].as_str().unwrap_or("") {
            "header" => lines.push(unescape(block["text"]["text"].as_str().unwrap_or(""))),
            "section" => {
                if let Some(text) = block["text"]["text"].as_str() {
                    let text = unescape(text).replace("```", "\n```\n");
                    lines.extend(text.lines().filter(|line| !line.is_empty()).map(|line| {
                        match line.strip_prefix('>') {
                            Some(quoted) => format!("┃ {quoted}"),
                            None => line.to_owned(),
                        }
                    }));
                }
                let fields: Vec<String> = block["fields"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|field| field["text"].as_str())
                    .map(unescape)
                    .collect();
                for pair in fields.chunks(2) {
                    let left: Vec<&str> = pair[0].lines().collect();
                    let right: Vec<&str> =
                        pair.get(1).map(|t| t.lines().collect()).unwrap_or_default();
                    for row in 0..left.len().max(right.len()) {
                        let l = left.get(row).copied().unwrap_or("");
                        let r = right.get(row).copied().unwrap_or("");
                        let pad = COLUMN.saturating_sub(l.chars().count());
                        lines.push(format!("{l}{}{r}", " ".repeat(pad)).trim_end().to_owned());
                    }
                }
            }
            "divider" => lines.push("─".repeat(COLUMN * 2)),
            "context" => {
                for element in block["elements"].as_array().into_iter().flatten() {
                    if let Some(text) = element["text"].as_str() {
                        lines.push(unescape(text));
                    }
                }
            }
            "actions" => {
                let buttons: Vec<String> = block["elements"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|button| format!("[ {} ]", button["text"]["text"].as_str().unwrap_or("")))
                    .collect();
                lines.push(buttons.join(" "));
            }
            _ => {}
        }
    }
    lines.join("\n")
}

fn check_block(at: &str, block: &Value, found: &mut Vec<String>) {
    let kind = block.get("type").and_then(Value::as_str).unwrap_or("");
    let allowed: &[&str] = match kind {
        "header" => &["type", "text", "block_id"],
        "section" => &["type", "text", "fields", "accessory", "block_id"],
        "context" => &["type", "elements", "block_id"],
        "actions" => &["type", "elements", "block_id"],
        "divider" => &["type", "block_id"],
        other => {
            found.push(format!("{at}: unknown block type {other:?}"));
            return;
        }
    };
    if let Some(keys) = block.as_object() {
        for key in keys.keys() {
            if !allowed.contains(&key.as_str()) {
                found.push(format!("{at} ({kind}): unexpected key {key:?}"));
            }
        }
    }
    match kind {
        "header" => match block.get("text") {
            Some(text) => check_text(&format!("{at} header"), text, &["plain_text"], 150, found),
            None => found.push(format!("{at}: header without text")),
        },
        "section" => {
            let text = block.get("text");
            let fields = block.get("fields");
            if text.is_none() && fields.is_none() {
                found.push(format!("{at}: section with neither text nor fields"));
            }
            if let Some(text) = text {
                check_text(
                    &format!("{at} section text"),
                    text,
                    &["plain_text", "mrkdwn"],
                    3_000,
                    found,
                );
            }
            if let Some(fields) = fields {
                match fields.as_array() {
                    Some(items) if !items.is_empty() && items.len() <= 10 => {
                        for (i, field) in items.iter().enumerate() {
                            check_text(
                                &format!("{at} field {i}"),
                                field,
                                &["plain_text", "mrkdwn"],
                                2_000,
                                found,
                            );
                        }
                    }
                    Some(items) => {
                        found.push(format!("{at}: {} section fields (1 to 10)", items.len()))
                    }
                    None => found.push(format!("{at}: section fields is not an array")),
                }
            }
            if let Some(accessory) = block.get("accessory") {
                check_button(&format!("{at} accessory"), accessory, found);
            }
        }
        "context" => match block.get("elements").and_then(Value::as_array) {
            Some(elements) if !elements.is_empty() && elements.len() <= 10 => {
                for (i, element) in elements.iter().enumerate() {
                    let at = format!("{at} context element {i}");
                    if element.get("type").and_then(Value::as_str) == Some("image") {
                        check_image(&at, element, found);
                    } else {
                        check_text(&at, element, &["plain_text", "mrkdwn"], 3_000, found);
                    }
                }
            }
            Some(elements) => found.push(format!(
                "{at}: {} context elements (1 to 10)",
                elements.len()
            )),
            None => found.push(format!("{at}: context without elements")),
        },
        "actions" => match block.get("elements").and_then(Value::as_array) {
            Some(elements) if !elements.is_empty() && elements.len() <= 25 => {
                for (i, element) in elements.iter().enumerate() {
                    check_button(&format!("{at} action {i}"), element, found);
                }
            }
            Some(elements) => found.push(format!("{at}: {} actions (1 to 25)", elements.len())),
            None => found.push(format!("{at}: actions without elements")),
        },
        _ => {}
    }
}

fn check_text(at: &str, text: &Value, kinds: &[&str], max: usize, found: &mut Vec<String>) {
    let kind = text.get("type").and_then(Value::as_str).unwrap_or("");
    if !kinds.contains(&kind) {
        found.push(format!(
            "{at}: text object of type {kind:?} (expected {kinds:?})"
        ));
    }
    match text.get("text").and_then(Value::as_str) {
        Some(content) => {
            let chars = content.chars().count();
            if chars == 0 {
                found.push(format!("{at}: empty text"));
            }
            if chars > max {
                found.push(format!("{at}: {chars} characters (at most {max})"));
            }
        }
        None => found.push(format!("{at}: text object without a text string")),
    }
    // Attacker text stays text: no mrkdwn object lets Slack link URLs or parse mentions.
    if kind == "mrkdwn" && text.get("verbatim") != Some(&Value::Bool(true)) {
        found.push(format!(
            "{at}: a mrkdwn text object without \"verbatim\": true"
        ));
    }
    if let Some(keys) = text.as_object() {
        for key in keys.keys() {
            if !["type", "text", "emoji", "verbatim"].contains(&key.as_str()) {
                found.push(format!("{at}: unexpected key {key:?} in a text object"));
            }
        }
    }
}

fn check_button(at: &str, button: &Value, found: &mut Vec<String>) {
    if button.get("type").and_then(Value::as_str) != Some("button") {
        found.push(format!("{at}: not a button"));
        return;
    }
    match button.get("text") {
        Some(text) => check_text(&format!("{at} text"), text, &["plain_text"], 75, found),
        None => found.push(format!("{at}: button without text")),
    }
    for (key, max) in [("url", 3_000), ("value", 2_000), ("action_id", 255)] {
        if let Some(value) = button.get(key) {
            match value.as_str() {
                Some(text) if text.chars().count() <= max => {}
                Some(text) => found.push(format!(
                    "{at}: {key} has {} characters (at most {max})",
                    text.chars().count()
                )),
                None => found.push(format!("{at}: {key} is not a string")),
            }
        }
    }
    if let Some(url) = button.get("url").and_then(Value::as_str)
        && !url.starts_with("https://")
        && !url.starts_with("http://")
    {
        found.push(format!("{at}: url {url:?} is not a web address"));
    }
}

fn check_image(at: &str, image: &Value, found: &mut Vec<String>) {
    for key in ["image_url", "alt_text"] {
        if image
            .get(key)
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            found.push(format!("{at}: image without {key}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn render_shows_the_post_as_slack_lays_it_out() {
        let body = json!({
            "username": "Cloudtrail",
            "text": "t",
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": "a &lt;b&gt; was denied"}},
                {"type": "section", "fields": [
                    {"type": "mrkdwn", "text": "*User*\nalice"},
                    {"type": "mrkdwn", "text": "*Region*\nus-east-1"},
                    {"type": "mrkdwn", "text": "*Time*\nnow"},
                ]},
                {"type": "section", "text": {"type": "mrkdwn", "text": "*Error Message*\n>no &amp; never"}},
                {"type": "section", "text": {"type": "mrkdwn", "text": "*Request Parameters*\n```{}```"}},
                {"type": "divider"},
                {"type": "context", "elements": [{"type": "mrkdwn", "text": "Event ID: 1"}]},
                {"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text", "text": "Open"}, "url": "https://x"}]},
            ],
        });
        let expected = [
            "Cloudtrail  [APP]",
            "a <b> was denied",
            &format!("User{}Region", " ".repeat(36)),
            &format!("alice{}us-east-1", " ".repeat(35)),
            "Time",
            "now",
            "Error Message",
            "┃ no & never",
            "Request Parameters",
            "```",
            "{}",
            "```",
            &"─".repeat(80),
            "Event ID: 1",
            "[ Open ]",
        ]
        .join("\n");
        assert_eq!(render(&body), expected);
    }

    #[test]
    fn a_well_formed_body_passes() {
        let body = json!({
            "text": "fallback",
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": "Denied", "emoji": false}},
                {"type": "section", "fields": [{"type": "mrkdwn", "text": "*Region*\nus-east-1", "verbatim": true}]},
                {"type": "section", "text": {"type": "mrkdwn", "text": "```{}```", "verbatim": true}},
                {"type": "divider"},
                {"type": "context", "elements": [{"type": "mrkdwn", "text": "CloudTrail", "verbatim": true}]},
                {"type": "actions", "elements": [{"type": "button",
                    "text": {"type": "plain_text", "text": "Open"}, "url": "https://example.com"}]}
            ]
        });
        assert_eq!(problems(&body), Vec::<String>::new());
    }

    #[test]
    fn every_limit_is_checked() {
        let body = json!({
            "text": "x".repeat(40_001),
            "blocks": [
                {"type": "header", "text": {"type": "mrkdwn", "text": "h".repeat(151)}},
                {"type": "section", "text": {"type": "mrkdwn", "text": "s".repeat(3_001)}},
                {"type": "section", "fields": (0..11).map(|_| json!({"type": "mrkdwn", "text": "f"})).collect::<Vec<_>>()},
                {"type": "section", "fields": [{"type": "mrkdwn", "text": "f".repeat(2_001)}]},
                {"type": "section"},
                {"type": "context", "elements": (0..11).map(|_| json!({"type": "mrkdwn", "text": "c"})).collect::<Vec<_>>()},
                {"type": "actions", "elements": [{"type": "button",
                    "text": {"type": "plain_text", "text": "b".repeat(76)}, "url": format!("https://{}", "u".repeat(3_000))}]},
                {"type": "section", "text": {"type": "mrkdwn", "text": ""}},
                {"type": "fancy"},
                {"type": "divider", "text": "no"}
            ]
        });
        let found = problems(&body);
        for expected in [
            "text has 40001 characters",
            "block 0 header: text object of type \"mrkdwn\"",
            "block 0 header: 151 characters",
            "block 1 section text: 3001 characters",
            "block 2: 11 section fields",
            "block 3 field 0: 2001 characters",
            "block 4: section with neither text nor fields",
            "block 5: 11 context elements",
            "block 6 action 0 text: 76 characters",
            "block 6 action 0: url has 3008 characters",
            "block 7 section text: empty text",
            "block 8: unknown block type \"fancy\"",
            "block 9 (divider): unexpected key \"text\"",
        ] {
            assert!(
                found.iter().any(|problem| problem.starts_with(expected)),
                "{expected:?} not in {found:#?}"
            );
        }
        let many = json!({"text": "t", "blocks": (0..51).map(|_| json!({"type": "divider"})).collect::<Vec<_>>()});
        assert_eq!(problems(&many), ["51 blocks (at most 50)"]);
    }
}
