//! Teams' rules for a post: the Workflows webhook's envelope around one Adaptive Card, and the
//! card valid against the published Adaptive Card 1.4 schema
//! (`fixtures/schemas/adaptive-cards`, with its provenance and license).

use serde_json::Value;
use std::sync::OnceLock;

const SCHEMA: &str =
    include_str!("../../../fixtures/schemas/adaptive-cards/adaptive-card-1.4.json");

/// The published schema, compiled once.
pub fn schema() -> &'static jsonschema::Validator {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        let schema: Value =
            serde_json::from_str(SCHEMA).expect("test-world: the Adaptive Card schema is JSON");
        jsonschema::validator_for(&schema).expect("test-world: the published schema compiles")
    })
}

/// What is wrong with a Workflows webhook body: the envelope (`type: message`, one Adaptive
/// Card attachment), then every schema error of the card. Empty when it is right.
pub fn problems(body: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    if body["type"] != "message" {
        problems.push(format!("type is {}, not \"message\"", body["type"]));
    }
    let attachments = body["attachments"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    if attachments.len() != 1 {
        problems.push(format!("{} attachments, not one", attachments.len()));
    }
    if let Some(attachment) = attachments.first() {
        if attachment["contentType"] != "application/vnd.microsoft.card.adaptive" {
            problems.push(format!("contentType is {}", attachment["contentType"]));
        }
        problems.extend(
            schema()
                .iter_errors(&attachment["content"])
                .map(|error| error.to_string()),
        );
    }
    problems
}

/// Panics with every problem of a Workflows webhook body.
pub fn assert_valid(body: &Value) {
    let problems = problems(body);
    assert!(problems.is_empty(), "{problems:?} in {body}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_schema_tells_a_card_from_a_broken_one() {
        let card = |content: Value| {
            json!({"type": "message", "attachments": [
                {"contentType": "application/vnd.microsoft.card.adaptive", "content": content}]})
        };
        let good = card(json!({"type": "AdaptiveCard", "version": "1.4", "body": [
            {"type": "RichTextBlock", "inlines": [{"type": "TextRun", "text": "x"}]}]}));
        assert_eq!(problems(&good), Vec::<String>::new());
        let run_outside_a_block = card(json!({"type": "AdaptiveCard", "version": "1.4", "body": [
            {"type": "TextRun", "text": "x"}]}));
        assert!(!problems(&run_outside_a_block).is_empty());
        let button_without_url = card(json!({"type": "AdaptiveCard", "version": "1.4", "body": [],
            "actions": [{"type": "Action.OpenUrl", "title": "x"}]}));
        assert!(!problems(&button_without_url).is_empty());
        let mut not_a_message = good.clone();
        not_a_message["type"] = json!("card");
        assert_eq!(
            problems(&not_a_message),
            ["type is \"card\", not \"message\""]
        );
    }
}
