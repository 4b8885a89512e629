//! Values copied into a Message as raw JSON text must read back everywhere the Message goes.
//!
//! serde_json checks a raw value's grammar but not two things a later full read refuses: a lone
//! surrogate escape (`"\ud800"`), and nesting deeper than its recursion limit of 128 levels.
//! Either in a published Message would fail every reader of it, every time: a value that would
//! is carried as its raw text, a string, instead.

use serde_json::Value;

/// The deepest nesting a field value may have: a Message puts three levels around it (the
/// object, `fields`, the field) and every reader stops at 128, so this leaves room to spare.
pub const MAX_FIELD_VALUE_DEPTH: usize = 100;

/// Whether raw JSON text reads back as a field value wherever a Message is read: nesting within
/// [`MAX_FIELD_VALUE_DEPTH`] and no escape a full read refuses.
pub fn reads_back_as_field_value(raw: &str) -> bool {
    let bytes = raw.as_bytes();
    let mut depth = 0usize;
    let mut in_string = false;
    // An escape in the surrogate range \uD800-\uDFFF (or near it): checked by a full read.
    let mut surrogate_escape = false;
    let mut at = 0;
    while at < bytes.len() {
        let byte = bytes[at];
        if in_string {
            match byte {
                b'\\' => {
                    if bytes.get(at + 1) == Some(&b'u')
                        && matches!(bytes.get(at + 2), Some(b'd' | b'D'))
                    {
                        surrogate_escape = true;
                    }
                    at += 2;
                    continue;
                }
                b'"' => in_string = false,
                _ => {}
            }
        } else {
            match byte {
                b'"' => in_string = true,
                b'[' | b'{' => {
                    depth += 1;
                    if depth > MAX_FIELD_VALUE_DEPTH {
                        return false;
                    }
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        at += 1;
    }
    // (IgnoredAny would not do: serde_json skips an ignored string's escapes unchecked.)
    !surrogate_escape || serde_json::from_str::<Value>(raw).is_ok()
}

/// The field value for raw JSON text: the value itself when it reads back everywhere, else its
/// text as a string, so that nothing in it can stop a Message.
pub fn field_value_from_raw(raw: &str) -> Value {
    if reads_back_as_field_value(raw)
        && let Ok(value) = serde_json::from_str(raw)
    {
        return value;
    }
    Value::String(raw.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn nested(depth: usize) -> String {
        format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
    }

    #[test]
    fn ordinary_values_read_back_as_themselves() {
        for raw in [
            r#"{"a":[1,{"b":"c"}],"d":null}"#,
            r#""\u00e9 \ud83d\ude80 \u2028""#,
            r#""brackets [[[ and {{{ inside a string""#,
            r#""an escaped quote \" then [""#,
            "12345678901234567890123",
        ] {
            assert!(reads_back_as_field_value(raw), "{raw}");
            assert_eq!(
                field_value_from_raw(raw),
                serde_json::from_str::<Value>(raw).unwrap()
            );
        }
        assert!(reads_back_as_field_value(&nested(MAX_FIELD_VALUE_DEPTH)));
    }

    #[test]
    fn a_lone_surrogate_is_carried_as_text() {
        for raw in [r#""\ud800""#, r#"{"k":"x\uDFFFy"}"#, r#"["\ud83d"]"#] {
            assert!(!reads_back_as_field_value(raw), "{raw}");
            assert_eq!(field_value_from_raw(raw), json!(raw));
        }
    }

    #[test]
    fn nesting_beyond_the_limit_is_carried_as_text() {
        let deep = nested(MAX_FIELD_VALUE_DEPTH + 1);
        assert!(!reads_back_as_field_value(&deep));
        assert_eq!(field_value_from_raw(&deep), Value::String(deep.clone()));
        // A Message holding the text reads back, where one holding the value would not.
        let message = crate::Message::new(
            "s",
            vec![crate::Field {
                key: "k".into(),
                value: field_value_from_raw(&nested(200)),
            }],
        );
        assert!(crate::Message::from_json(&message.to_json()).is_ok());
        assert!(serde_json::from_str::<Value>(&format!("[[[{}]]]", nested(126))).is_err());
    }

    #[test]
    fn text_that_is_not_json_at_all_is_carried_as_text() {
        assert_eq!(field_value_from_raw("{oops"), json!("{oops"));
    }
}
