//! Email addresses as the stack is given them: plain `local@domain`, nothing that could start a
//! second header or a second address.

use std::fmt;

/// SES takes at most 50 recipients an email.
pub const MAX_RECIPIENTS: usize = 50;
/// The longest address RFC 5321 allows through SMTP.
const MAX_ADDRESS_CHARS: usize = 254;

/// One address, `local@domain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("is not set; it must be an email address (local@domain)")]
    Missing,
    #[error("{0:?} is not an email address (local@domain, no spaces, quotes or brackets)")]
    NotAnAddress(String),
    #[error("names {0} addresses; SES takes at most {MAX_RECIPIENTS} an email")]
    TooMany(usize),
}

impl Address {
    pub fn parse(text: &str) -> Result<Address, AddressError> {
        let address = text.trim();
        if address.is_empty() {
            return Err(AddressError::Missing);
        }
        let not_an_address = || AddressError::NotAnAddress(address.chars().take(80).collect());
        let (local, domain) = address.split_once('@').ok_or_else(not_an_address)?;
        let allowed = |c: char| {
            c.is_ascii_graphic()
                && !matches!(c, '<' | '>' | '(' | ')' | '[' | ']' | ',' | ';')
                && !matches!(c, ':' | '"' | '\\' | '@')
        };
        let domain_ok = domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && domain
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
        if local.is_empty()
            || !local.chars().all(allowed)
            || !domain_ok
            || address.len() > MAX_ADDRESS_CHARS
        {
            return Err(not_an_address());
        }
        Ok(Address(address.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Comma-separated addresses, at least one and at most [`MAX_RECIPIENTS`], each once.
pub fn parse_recipients(text: &str) -> Result<Vec<Address>, AddressError> {
    let mut recipients: Vec<Address> = Vec::new();
    for part in text.split(',').filter(|part| !part.trim().is_empty()) {
        let address = Address::parse(part)?;
        if !recipients.contains(&address) {
            recipients.push(address);
        }
    }
    match recipients.len() {
        0 => Err(AddressError::Missing),
        count if count > MAX_RECIPIENTS => Err(AddressError::TooMany(count)),
        _ => Ok(recipients),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_addresses_only() {
        assert_eq!(
            Address::parse(" alerts@example.com\n").unwrap().as_str(),
            "alerts@example.com"
        );
        assert!(Address::parse("first.last+ids@mail.example.co.uk").is_ok());
        for bad in [
            "alerts",
            "@example.com",
            "alerts@",
            "alerts@localhost",
            "Alerts <alerts@example.com>",
            "a@example.com\r\nBcc: mallory@example.net",
            "a b@example.com",
            "a@exa mple.com",
            "a\"@example.com",
            "a@b@example.com",
            "a@.example.com",
        ] {
            assert!(
                matches!(Address::parse(bad), Err(AddressError::NotAnAddress(_))),
                "{bad:?}"
            );
        }
        assert_eq!(Address::parse(" "), Err(AddressError::Missing));
    }

    #[test]
    fn recipients_are_comma_separated_each_once_at_most_fifty() {
        let to = parse_recipients("a@example.com, b@example.com,,a@example.com").unwrap();
        assert_eq!(
            to.iter().map(Address::as_str).collect::<Vec<_>>(),
            ["a@example.com", "b@example.com"]
        );
        assert_eq!(parse_recipients(""), Err(AddressError::Missing));
        let many: Vec<String> = (0..51).map(|i| format!("r{i}@example.com")).collect();
        assert_eq!(
            parse_recipients(&many.join(",")),
            Err(AddressError::TooMany(51))
        );
        assert!(parse_recipients("a@example.com,not an address").is_err());
    }
}
