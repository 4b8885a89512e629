//! An answer's XML as a small owned tree, read by local names (the namespaces of EC2's and
//! IAM's answers say nothing a caller needs).

/// One XML element: its local name, its text, its child elements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    name: String,
    text: String,
    children: Vec<Element>,
}

/// Answers are small; anything nested deeper than this is not one.
const MAX_DEPTH: usize = 64;

impl Element {
    pub fn parse(text: &str) -> Result<Element, String> {
        let document = roxmltree::Document::parse(text).map_err(|error| error.to_string())?;
        Element::of(document.root_element(), 0)
    }

    fn of(node: roxmltree::Node<'_, '_>, depth: usize) -> Result<Element, String> {
        if depth > MAX_DEPTH {
            return Err(format!("nested deeper than {MAX_DEPTH} elements"));
        }
        let mut text = String::new();
        let mut children = Vec::new();
        for child in node.children() {
            if child.is_element() {
                children.push(Element::of(child, depth + 1)?);
            } else if let Some(part) = child.text() {
                text.push_str(part);
            }
        }
        Ok(Element {
            name: node.tag_name().name().to_owned(),
            text: text.trim().to_owned(),
            children,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its own text, trimmed.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The first child element named `name`.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|child| child.name == name)
    }

    /// The text of the first child named `name`, when there is one.
    pub fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name).map(Element::text)
    }

    /// The child elements named `name`.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> {
        self.children.iter().filter(move |child| child.name == name)
    }

    /// The `item`s of the list child `name` (`<securityGroupRuleSet><item>...`), the Query
    /// protocol's way of writing a list; IAM writes `member` instead.
    pub fn items<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> {
        self.child(name)
            .into_iter()
            .flat_map(|list| list.children.iter())
            .filter(|item| item.name == "item" || item.name == "member")
    }

    /// The first element named `name` here or anywhere below, depth first.
    pub fn find(&self, name: &str) -> Option<&Element> {
        if self.name == name {
            return Some(self);
        }
        self.children.iter().find_map(|child| child.find(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_errors_read_by_local_name() {
        let answer = Element::parse(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<DescribeSecurityGroupRulesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
  <requestId>r</requestId>
  <securityGroupRuleSet>
    <item><securityGroupRuleId>sgr-1</securityGroupRuleId><isEgress>false</isEgress></item>
    <item><securityGroupRuleId>sgr-2</securityGroupRuleId><isEgress>true</isEgress></item>
  </securityGroupRuleSet>
</DescribeSecurityGroupRulesResponse>"#,
        )
        .unwrap();
        let ids: Vec<&str> = answer
            .items("securityGroupRuleSet")
            .filter_map(|item| item.child_text("securityGroupRuleId"))
            .collect();
        assert_eq!(ids, ["sgr-1", "sgr-2"]);
        let error = Element::parse(
            "<ErrorResponse><Error><Type>Sender</Type><Code>NoSuchEntity</Code><Message>gone</Message></Error></ErrorResponse>",
        )
        .unwrap();
        assert_eq!(
            error.find("Error").unwrap().child_text("Code"),
            Some("NoSuchEntity")
        );
        let nested = format!("{}{}", "<a>".repeat(100), "</a>".repeat(100));
        assert!(Element::parse(&nested).is_err());
        assert!(Element::parse("not xml").is_err());
    }
}
