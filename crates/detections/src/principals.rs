//! A list of principals the stack is told about (`ExpectedPrincipalArns`,
//! `NeverContainPrincipalArns`): whole ARNs, IAM roles (every session of the role), or a
//! role's sessions written `arn:...:assumed-role/NAME/*`. A `*` stands only for a whole session
//! name, which the caller chooses; nothing else may be a wildcard.

/// An entry that is none of the three.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not an ARN, an IAM role's ARN, or an assumed role's sessions (arn:...:assumed-role/NAME/*); a * may stand only for a whole session name, which the caller chooses"
)]
pub struct PrincipalEntryError(pub String);

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrincipalList {
    arns: Vec<String>,
    /// Roles all of whose sessions are listed (`arn:...:assumed-role/NAME/*`), as the prefix.
    session_prefixes: Vec<String>,
}

impl PrincipalList {
    /// ARNs separated by commas; empty entries are ignored.
    pub fn parse(text: &str) -> Result<PrincipalList, PrincipalEntryError> {
        let mut list = PrincipalList::default();
        for arn in text.split(',').map(str::trim).filter(|arn| !arn.is_empty()) {
            let bad = || PrincipalEntryError(arn.to_owned());
            if !arn.starts_with("arn:") || arn.contains(char::is_whitespace) {
                return Err(bad());
            }
            match arn.strip_suffix('*') {
                None if !arn.contains('*') => list.arns.push(arn.to_owned()),
                Some(prefix) if !prefix.contains('*') && is_role_sessions(prefix) => {
                    list.session_prefixes.push(prefix.to_owned());
                }
                _ => return Err(bad()),
            }
        }
        Ok(list)
    }

    pub fn is_empty(&self) -> bool {
        self.arns.is_empty() && self.session_prefixes.is_empty()
    }

    /// The entry naming the principal `arn` (a session's issuing role `issuer`, when known):
    /// its own ARN, its role's (a role ARN names every session of the role: same account, same
    /// role name, whatever the path), or its role's sessions.
    pub fn entry_for(&self, arn: &str, issuer: Option<&str>) -> Option<&str> {
        if let Some(entry) = self
            .arns
            .iter()
            .find(|entry| Some(entry.as_str()) == Some(arn) || Some(entry.as_str()) == issuer)
        {
            return Some(entry);
        }
        if let Some(entry) = session_role(arn).and_then(|session| {
            self.arns
                .iter()
                .find(|entry| role_of_arn(entry) == Some(session))
        }) {
            return Some(entry);
        }
        self.session_prefixes
            .iter()
            .find(|prefix| arn.starts_with(prefix.as_str()) && !arn[prefix.len()..].contains('/'))
            .map(String::as_str)
    }
}

/// `arn:PARTITION:sts::ACCOUNT:assumed-role/NAME/` with a role name and nothing after it.
fn is_role_sessions(prefix: &str) -> bool {
    let Some((head, role)) = prefix.split_once(":assumed-role/") else {
        return false;
    };
    head.contains(":sts:")
        && role
            .strip_suffix('/')
            .is_some_and(|name| !name.is_empty() && !name.contains('/'))
}

/// The account and role name of a session ARN (`arn:P:sts::ACCOUNT:assumed-role/NAME/SESSION`).
pub fn session_role(arn: &str) -> Option<(&str, &str)> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let [_, _, "sts", _, account, resource] = parts[..] else {
        return None;
    };
    let rest = resource.strip_prefix("assumed-role/")?;
    let (role, session) = rest.split_once('/')?;
    (!role.is_empty() && !session.is_empty()).then_some((account, role))
}

/// The account and role name of a role ARN (`arn:P:iam::ACCOUNT:role/PATH/NAME`).
fn role_of_arn(arn: &str) -> Option<(&str, &str)> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let [_, _, "iam", _, account, resource] = parts[..] else {
        return None;
    };
    let path = resource.strip_prefix("role/")?;
    let name = path.rsplit('/').next()?;
    (!name.is_empty()).then_some((account, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_roles_and_sessions_name_their_principals() {
        let list = PrincipalList::parse(
            "arn:aws:iam::1:user/admin, arn:aws:iam::1:role/ops/BreakGlass,arn:aws:sts::1:assumed-role/Deploy/*",
        )
        .unwrap();
        assert_eq!(
            list.entry_for("arn:aws:iam::1:user/admin", None),
            Some("arn:aws:iam::1:user/admin")
        );
        // A role names its sessions, by the session's issuer or by its role's name.
        assert_eq!(
            list.entry_for("arn:aws:sts::1:assumed-role/BreakGlass/alice", None),
            Some("arn:aws:iam::1:role/ops/BreakGlass")
        );
        assert_eq!(
            list.entry_for(
                "arn:aws:sts::1:assumed-role/X/s",
                Some("arn:aws:iam::1:role/ops/BreakGlass")
            ),
            Some("arn:aws:iam::1:role/ops/BreakGlass")
        );
        assert_eq!(
            list.entry_for("arn:aws:sts::1:assumed-role/Deploy/ci-42", None),
            Some("arn:aws:sts::1:assumed-role/Deploy/")
        );
        // Another account's role of the same name, another role, a longer path: not named.
        assert_eq!(
            list.entry_for("arn:aws:sts::2:assumed-role/BreakGlass/alice", None),
            None
        );
        assert_eq!(list.entry_for("arn:aws:iam::1:user/admin2", None), None);
        assert_eq!(
            list.entry_for("arn:aws:sts::1:assumed-role/Deploy/a/b", None),
            None
        );
        for bad in [
            "admin",
            "arn:aws:iam::1:user/*",
            "arn:aws:sts::1:assumed-role/*/x",
            "arn:aws:iam::1:user/a b",
        ] {
            assert!(PrincipalList::parse(bad).is_err(), "{bad}");
        }
        assert!(PrincipalList::parse(" , ").unwrap().is_empty());
    }
}
