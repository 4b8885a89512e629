//! EventBridge event patterns, evaluated as EventBridge documents them, so that a source can
//! tell which detection an event is: the same patterns the template's rules hold.
//!
//! - An object of fields: every field must match. `$or` holds alternatives at its level.
//! - A field's list of values: the event matches when any of its values at that path matches
//!   any of them. Arrays in the event are flattened: a path reaches the fields of every object
//!   of an array, and every value of an array is one of the path's values.
//! - Values: a string, number, boolean or null, exactly; `prefix`, `suffix`,
//!   `equals-ignore-case`, `wildcard`, `anything-but`, `numeric`, `exists` and `cidr` filters.
//!   `exists` looks at values, not objects (EventBridge: "only works on leaf nodes"), and every
//!   filter but `exists: false` needs a value to be there.

use serde_json::{Map, Value};
use std::net::IpAddr;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PatternError {
    #[error("{path}: {reason}")]
    Invalid { path: String, reason: String },
}

/// A compiled pattern.
#[derive(Debug, Clone)]
pub enum Pattern {
    All(Vec<Pattern>),
    Any(Vec<Pattern>),
    Field {
        path: Vec<String>,
        filters: Vec<Filter>,
    },
}

#[derive(Debug, Clone)]
pub enum Filter {
    Exactly(Value),
    Prefix(Text),
    Suffix(Text),
    EqualsIgnoreCase(String),
    Wildcard(Vec<String>),
    AnythingBut(Box<Filter>),
    NoneOf(Vec<Value>),
    Numeric(Vec<(Comparison, f64)>),
    Exists(bool),
    Cidr(IpAddr, u8),
}

/// A prefix or suffix, case-sensitive or not.
#[derive(Debug, Clone)]
pub struct Text {
    pub text: String,
    pub ignore_case: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Comparison {
    Less,
    LessOrEqual,
    Equal,
    GreaterOrEqual,
    Greater,
}

impl Pattern {
    /// Compiles a pattern (its JSON, as the template holds it).
    pub fn compile(pattern: &Value) -> Result<Pattern, PatternError> {
        compile_object(pattern, &mut Vec::new())
    }

    pub fn matches(&self, event: &Value) -> bool {
        match self {
            Pattern::All(parts) => parts.iter().all(|part| part.matches(event)),
            Pattern::Any(parts) => parts.iter().any(|part| part.matches(event)),
            Pattern::Field { path, filters } => {
                let mut values = Vec::new();
                values_at(event, path, &mut values);
                filters.iter().any(|filter| filter.matches(&values))
            }
        }
    }
}

fn invalid(path: &[String], reason: impl Into<String>) -> PatternError {
    PatternError::Invalid {
        path: if path.is_empty() {
            "pattern".into()
        } else {
            path.join(".")
        },
        reason: reason.into(),
    }
}

fn compile_object(pattern: &Value, path: &mut Vec<String>) -> Result<Pattern, PatternError> {
    let Value::Object(fields) = pattern else {
        return Err(invalid(path, "expected an object of fields"));
    };
    if fields.is_empty() {
        return Err(invalid(
            path,
            "an empty object matches nothing EventBridge accepts",
        ));
    }
    let mut parts = Vec::with_capacity(fields.len());
    for (key, value) in fields {
        if key == "$or" {
            let Value::Array(alternatives) = value else {
                return Err(invalid(path, "$or takes a list of patterns"));
            };
            if alternatives.len() < 2 {
                return Err(invalid(path, "$or takes two patterns or more"));
            }
            let compiled = alternatives
                .iter()
                .map(|alternative| compile_object(alternative, path))
                .collect::<Result<_, _>>()?;
            parts.push(Pattern::Any(compiled));
            continue;
        }
        path.push(key.clone());
        let part = match value {
            Value::Object(_) => compile_object(value, path)?,
            Value::Array(values) if !values.is_empty() => Pattern::Field {
                path: path.clone(),
                filters: values
                    .iter()
                    .map(|value| compile_filter(value, path))
                    .collect::<Result<_, _>>()?,
            },
            _ => {
                return Err(invalid(
                    path,
                    "expected a non-empty list of values or an object",
                ));
            }
        };
        path.pop();
        parts.push(part);
    }
    Ok(match parts.len() {
        1 => parts.pop().expect("one part"),
        _ => Pattern::All(parts),
    })
}

fn compile_filter(value: &Value, path: &[String]) -> Result<Filter, PatternError> {
    let Value::Object(filter) = value else {
        return match value {
            Value::Array(_) => Err(invalid(path, "a value cannot be a list")),
            scalar => Ok(Filter::Exactly(scalar.clone())),
        };
    };
    let mut entries = filter.iter();
    let (Some((operator, argument)), None) = (entries.next(), entries.next()) else {
        return Err(invalid(path, "a filter has exactly one operator"));
    };
    compile_operator(operator, argument, path)
}

fn compile_operator(
    operator: &str,
    argument: &Value,
    path: &[String],
) -> Result<Filter, PatternError> {
    let bad = |what: &str| invalid(path, format!("{operator} takes {what}"));
    Ok(match operator {
        "prefix" => Filter::Prefix(text(argument).ok_or_else(|| bad("a string"))?),
        "suffix" => Filter::Suffix(text(argument).ok_or_else(|| bad("a string"))?),
        "equals-ignore-case" => {
            Filter::EqualsIgnoreCase(argument.as_str().ok_or_else(|| bad("a string"))?.to_owned())
        }
        "wildcard" => Filter::Wildcard(strings(argument).ok_or_else(|| bad("strings"))?),
        "exists" => Filter::Exists(argument.as_bool().ok_or_else(|| bad("true or false"))?),
        "numeric" => Filter::Numeric(numeric(argument).ok_or_else(|| bad("comparisons"))?),
        "cidr" => {
            let (address, bits) = argument
                .as_str()
                .and_then(cidr)
                .ok_or_else(|| bad("an address/bits block"))?;
            Filter::Cidr(address, bits)
        }
        "anything-but" => match argument {
            Value::Array(values) if values.iter().all(|v| v.is_string() || v.is_number()) => {
                Filter::NoneOf(values.clone())
            }
            Value::String(_) | Value::Number(_) => Filter::NoneOf(vec![argument.clone()]),
            Value::Object(inner) if inner.len() == 1 => {
                let (inner_operator, inner_argument) = inner.iter().next().expect("one");
                if !matches!(
                    inner_operator.as_str(),
                    "prefix" | "suffix" | "wildcard" | "equals-ignore-case"
                ) {
                    return Err(bad(
                        "values, or a prefix, suffix, wildcard or equals-ignore-case",
                    ));
                }
                Filter::AnythingBut(Box::new(compile_operator(
                    inner_operator,
                    inner_argument,
                    path,
                )?))
            }
            _ => return Err(bad("values, or one filter")),
        },
        other => return Err(invalid(path, format!("unknown filter {other:?}"))),
    })
}

fn text(argument: &Value) -> Option<Text> {
    match argument {
        Value::String(text) => Some(Text {
            text: text.clone(),
            ignore_case: false,
        }),
        Value::Object(inner) => match (inner.len(), inner.get("equals-ignore-case")) {
            (1, Some(Value::String(text))) => Some(Text {
                text: text.clone(),
                ignore_case: true,
            }),
            _ => None,
        },
        _ => None,
    }
}

fn strings(argument: &Value) -> Option<Vec<String>> {
    match argument {
        Value::String(text) => Some(vec![text.clone()]),
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .map(|item| item.as_str().map(str::to_owned))
            .collect(),
        _ => None,
    }
}

fn numeric(argument: &Value) -> Option<Vec<(Comparison, f64)>> {
    let items = argument.as_array()?;
    if items.is_empty() || items.len() % 2 != 0 || items.len() > 4 {
        return None;
    }
    items
        .chunks(2)
        .map(|pair| {
            let comparison = match pair[0].as_str()? {
                "<" => Comparison::Less,
                "<=" => Comparison::LessOrEqual,
                "=" => Comparison::Equal,
                ">=" => Comparison::GreaterOrEqual,
                ">" => Comparison::Greater,
                _ => return None,
            };
            Some((comparison, pair[1].as_f64()?))
        })
        .collect()
}

fn cidr(block: &str) -> Option<(IpAddr, u8)> {
    let (address, bits) = block.split_once('/')?;
    let address: IpAddr = address.parse().ok()?;
    let bits: u8 = bits.parse().ok()?;
    let most = if address.is_ipv4() { 32 } else { 128 };
    (bits <= most).then_some((address, bits))
}

/// Every value at `path`, through objects and across arrays (objects themselves are no values).
fn values_at<'v>(node: &'v Value, path: &[String], out: &mut Vec<&'v Value>) {
    match (node, path.split_first()) {
        (Value::Array(items), _) => {
            for item in items {
                values_at(item, path, out);
            }
        }
        (Value::Object(fields), Some((key, rest))) => {
            if let Some(value) = fields.get(key) {
                values_at(value, rest, out);
            }
        }
        (Value::Object(_), None) => {}
        (_, None) => out.push(node),
        (_, Some(_)) => {}
    }
}

impl Filter {
    fn matches(&self, values: &[&Value]) -> bool {
        match self {
            Filter::Exists(wanted) => values.is_empty() != *wanted,
            _ => values.iter().any(|value| self.accepts(value)),
        }
    }

    fn accepts(&self, value: &Value) -> bool {
        match self {
            Filter::Exactly(expected) => same(expected, value),
            Filter::Prefix(prefix) => value.as_str().is_some_and(|text| prefix.starts(text)),
            Filter::Suffix(suffix) => value.as_str().is_some_and(|text| suffix.ends(text)),
            Filter::EqualsIgnoreCase(expected) => value
                .as_str()
                .is_some_and(|text| text.to_lowercase() == expected.to_lowercase()),
            Filter::Wildcard(patterns) => value.as_str().is_some_and(|text| {
                patterns
                    .iter()
                    .any(|pattern| wildcard_matches(pattern, text))
            }),
            Filter::AnythingBut(inner) => !inner.accepts(value),
            Filter::NoneOf(excluded) => !excluded.iter().any(|excluded| same(excluded, value)),
            Filter::Numeric(comparisons) => value.as_f64().is_some_and(|number| {
                !value.is_boolean()
                    && comparisons
                        .iter()
                        .all(|(comparison, bound)| match comparison {
                            Comparison::Less => number < *bound,
                            Comparison::LessOrEqual => number <= *bound,
                            Comparison::Equal => number == *bound,
                            Comparison::GreaterOrEqual => number >= *bound,
                            Comparison::Greater => number > *bound,
                        })
            }),
            Filter::Exists(_) => true,
            Filter::Cidr(network, bits) => value
                .as_str()
                .and_then(|text| text.parse::<IpAddr>().ok())
                .is_some_and(|address| in_block(address, *network, *bits)),
        }
    }
}

impl Text {
    fn starts(&self, text: &str) -> bool {
        if self.ignore_case {
            text.to_lowercase().starts_with(&self.text.to_lowercase())
        } else {
            text.starts_with(&self.text)
        }
    }

    fn ends(&self, text: &str) -> bool {
        if self.ignore_case {
            text.to_lowercase().ends_with(&self.text.to_lowercase())
        } else {
            text.ends_with(&self.text)
        }
    }
}

/// Equal JSON values; numbers by their value (1 and 1.0 are one number to EventBridge).
fn same(expected: &Value, value: &Value) -> bool {
    match (expected, value) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        _ => expected == value,
    }
}

/// `*` stands for any run of characters (`\*` for a star itself).
fn wildcard_matches(pattern: &str, text: &str) -> bool {
    let mut parts: Vec<String> = vec![String::new()];
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(escaped) => parts.last_mut().expect("a part").push(escaped),
                None => parts.last_mut().expect("a part").push('\\'),
            },
            '*' => parts.push(String::new()),
            other => parts.last_mut().expect("a part").push(other),
        }
    }
    let (first, rest) = parts.split_first().expect("a part");
    let Some(mut left) = text.strip_prefix(first.as_str()) else {
        return false;
    };
    let Some((last, middle)) = rest.split_last() else {
        return left.is_empty();
    };
    for part in middle {
        match left.find(part.as_str()) {
            Some(at) => left = &left[at + part.len()..],
            None => return false,
        }
    }
    left.len() >= last.len() && left.ends_with(last.as_str())
}

fn in_block(address: IpAddr, network: IpAddr, bits: u8) -> bool {
    match (address, network) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// The pattern's JSON with each `${Name}` replaced as `resolve` says; `None` names one it could
/// not resolve.
pub fn substitute(
    pattern: &Value,
    resolve: &dyn Fn(&str) -> Option<String>,
) -> Result<Value, String> {
    substitute_in(pattern, resolve, false)
}

fn substitute_in(
    pattern: &Value,
    resolve: &dyn Fn(&str) -> Option<String>,
    numeric: bool,
) -> Result<Value, String> {
    Ok(match pattern {
        Value::String(text) => {
            if !text.contains("${") {
                return Ok(pattern.clone());
            }
            let mut out = String::with_capacity(text.len());
            let mut rest = text.as_str();
            while let Some(start) = rest.find("${") {
                out.push_str(&rest[..start]);
                let end = rest[start..]
                    .find('}')
                    .ok_or_else(|| format!("an unclosed placeholder in {text:?}"))?;
                let name = &rest[start + 2..start + end];
                out.push_str(&resolve(name).ok_or_else(|| name.to_owned())?);
                rest = &rest[start + end + 1..];
            }
            out.push_str(rest);
            // In a numeric comparison, a placeholder stands for a number (GuardDuty's severity).
            match out.parse::<serde_json::Number>() {
                Ok(number) if numeric => Value::Number(number),
                _ => Value::String(out),
            }
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| substitute_in(item, resolve, numeric))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(key, value)| {
                    Ok((
                        key.clone(),
                        substitute_in(value, resolve, key == "numeric")?,
                    ))
                })
                .collect::<Result<Map<_, _>, String>>()?,
        ),
        other => other.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn matches(pattern: Value, event: Value) -> bool {
        Pattern::compile(&pattern).unwrap().matches(&event)
    }

    #[test]
    fn values_fields_and_alternatives() {
        let pattern = json!({"source": ["aws.iam"], "detail": {"eventName": ["A", "B"]}});
        assert!(matches(
            pattern.clone(),
            json!({"source": "aws.iam", "detail": {"eventName": "B"}})
        ));
        assert!(!matches(
            pattern.clone(),
            json!({"source": "aws.iam", "detail": {"eventName": "C"}})
        ));
        assert!(!matches(pattern, json!({"source": "aws.iam"})));
        let either = json!({"$or": [{"a": ["x"]}, {"b": [1]}]});
        assert!(matches(either.clone(), json!({"b": 1.0})));
        assert!(!matches(either, json!({"a": "y", "b": 2})));
    }

    #[test]
    fn arrays_are_flattened_across_objects() {
        let pattern = json!({"items": {"ranges": {"cidr": [{"suffix": "/0"}]}}});
        let event = json!({"items": [{"ranges": [{"cidr": "10.0.0.0/8"}]}, {"ranges": [{"cidr": "0.0.0.0/0"}]}]});
        assert!(matches(pattern.clone(), event));
        assert!(!matches(
            pattern,
            json!({"items": [{"ranges": [{"cidr": "10.0.0.0/8"}]}]})
        ));
        assert!(matches(json!({"t": ["a"]}), json!({"t": ["b", "a"]})));
    }

    #[test]
    fn filters() {
        let event = json!({"s": "AccessDenied", "n": 7.5, "ip": "10.1.2.3", "e": null});
        for (filter, expected) in [
            (json!({"prefix": "Access"}), true),
            (json!({"prefix": {"equals-ignore-case": "access"}}), true),
            (json!({"suffix": "Denied"}), true),
            (json!({"suffix": "denied"}), false),
            (json!({"equals-ignore-case": "accessdenied"}), true),
            (json!({"wildcard": "A*D*d"}), true),
            (json!({"wildcard": "A*x"}), false),
            (json!({"anything-but": "AccessDenied"}), false),
            (json!({"anything-but": ["X", "Y"]}), true),
            (json!({"anything-but": {"prefix": "Acc"}}), false),
            (json!({"anything-but": {"suffix": "x"}}), true),
            (json!({"exists": true}), true),
            (json!({"exists": false}), false),
        ] {
            assert_eq!(
                matches(json!({"s": [filter.clone()]}), event.clone()),
                expected,
                "{filter}"
            );
        }
        assert!(matches(
            json!({"n": [{"numeric": [">=", 7, "<", 8]}]}),
            event.clone()
        ));
        assert!(!matches(
            json!({"n": [{"numeric": [">", 7.5]}]}),
            event.clone()
        ));
        assert!(matches(
            json!({"ip": [{"cidr": "10.0.0.0/8"}]}),
            event.clone()
        ));
        assert!(!matches(
            json!({"ip": [{"cidr": "10.0.0.0/16"}]}),
            event.clone()
        ));
        assert!(matches(json!({"e": [null]}), event.clone()));
        assert!(matches(
            json!({"missing": [{"exists": false}]}),
            event.clone()
        ));
        // Every filter but exists: false needs a value to be there.
        assert!(!matches(
            json!({"missing": [{"anything-but": "x"}]}),
            event.clone()
        ));
        // An object is no value for exists.
        assert!(!matches(
            json!({"o": [{"exists": true}]}),
            json!({"o": {"a": 1}})
        ));
        assert!(matches(
            json!({"o": {"a": [{"exists": true}]}}),
            json!({"o": {"a": 1}})
        ));
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_matches("arn:*:role/x/*", "arn:aws:iam:role/x/s"));
        assert!(!wildcard_matches("arn:*:role/x/*", "arn:aws:iam:role/y/s"));
        assert!(wildcard_matches("a\\*b", "a*b"));
        assert!(!wildcard_matches("a\\*b", "axb"));
        assert!(wildcard_matches("*", ""));
        assert!(!wildcard_matches("ab*ba", "aba"));
    }

    #[test]
    fn what_eventbridge_refuses_is_an_error() {
        for bad in [
            json!({"a": "x"}),
            json!({"a": []}),
            json!({"a": [{"prefx": "x"}]}),
            json!({"a": [{"prefix": "x", "suffix": "y"}]}),
            json!({"a": [{"numeric": [">=", "4"]}]}),
            json!({"$or": {"a": ["x"]}}),
            json!({"$or": [{"a": ["x"]}]}),
            json!({"a": [{"anything-but": {"numeric": [">", 1]}}]}),
            json!({}),
        ] {
            assert!(Pattern::compile(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn placeholders_are_substituted() {
        let resolve = |name: &str| match name {
            "AWS::AccountId" => Some("111122223333".to_owned()),
            "Name" => Some("12".to_owned()),
            "Severity" => Some("4".to_owned()),
            _ => None,
        };
        let pattern = json!({"a": ["arn:aws:iam::${AWS::AccountId}:root", "${Name}"], "n": [{"numeric": [">=", "${Severity}"]}]});
        // Numbers only in numeric comparisons: an account ID stays a string.
        assert_eq!(
            substitute(&pattern, &resolve).unwrap(),
            json!({"a": ["arn:aws:iam::111122223333:root", "12"], "n": [{"numeric": [">=", 4]}]})
        );
        assert_eq!(
            substitute(&json!({"a": ["${Nope}"]}), &resolve),
            Err("Nope".into())
        );
    }
}
