//! Account names posts show beside account IDs: those given (`ACCOUNT_NAMES`), and the
//! organisation's when asked for, looked up from AWS Organizations once per container
//! (ListAccounts answers in the management account or a delegated administrator account only).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Names of AWS accounts, from `111122223333=prod,444455556666=staging`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountNames(HashMap<String, String>);

impl FromIterator<(String, String)> for AccountNames {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(pairs: I) -> Self {
        AccountNames(pairs.into_iter().collect())
    }
}

impl AccountNames {
    /// Reads `id=name` pairs separated by commas; an account ID is 12 digits, a name is not
    /// empty. Empty text names no account.
    pub fn parse(text: &str) -> Result<AccountNames, String> {
        let mut names = HashMap::new();
        for pair in text
            .split(',')
            .map(str::trim)
            .filter(|pair| !pair.is_empty())
        {
            let (id, name) = pair
                .split_once('=')
                .map(|(id, name)| (id.trim(), name.trim()))
                .ok_or_else(|| format!("{pair:?} is not account-id=name"))?;
            if id.len() != 12 || !id.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("{id:?} is not a 12-digit account ID"));
            }
            if name.is_empty() {
                return Err(format!("account {id} has an empty name"));
            }
            names.insert(id.to_owned(), name.to_owned());
        }
        Ok(AccountNames(names))
    }

    /// These names, and `others`' where they name the same account.
    pub fn overridden_by(mut self, others: &AccountNames) -> AccountNames {
        self.0
            .extend(others.0.iter().map(|(id, name)| (id.clone(), name.clone())));
        self
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `prod (111122223333)` when the account's name is known.
    pub fn label(&self, account_id: &str) -> String {
        match self.0.get(account_id) {
            Some(name) => format!("{name} ({account_id})"),
            None => account_id.to_owned(),
        }
    }
}

/// How long the organisation's account names may take to look up, and how long after a failed
/// lookup the next is tried: alerts never wait long for a name.
const ORGANIZATION_LOOKUP_TIME: Duration = Duration::from_secs(5);
const ORGANIZATION_LOOKUP_RETRY: Duration = Duration::from_secs(600);

/// The names a destination shows, kept for the life of the container.
#[derive(Debug, Default)]
pub struct AccountDirectory {
    given: AccountNames,
    organizations: Option<aws_sdk_organizations::Client>,
    /// The names in use, and when to try the organisation's again after a failed lookup.
    known: Mutex<Option<(Arc<AccountNames>, Option<Instant>)>>,
}

impl AccountDirectory {
    pub fn new(given: AccountNames) -> Self {
        AccountDirectory {
            given,
            ..AccountDirectory::default()
        }
    }

    /// Also names the organisation's accounts (names given win).
    pub fn with_organization(mut self, client: aws_sdk_organizations::Client) -> Self {
        self.organizations = Some(client);
        self
    }

    /// The names to show: those given, and the organisation's when asked for. A lookup that
    /// fails (or takes too long) is logged, posts go on with the names given, and it is tried
    /// again some minutes later: a name is worth less than an alert.
    pub async fn names(&self) -> Arc<AccountNames> {
        let known = self.known.lock().expect("never poisoned").clone();
        if let Some((names, retry_at)) = known
            && retry_at.is_none_or(|at| Instant::now() < at)
        {
            return names;
        }
        let (names, retry_at) = match &self.organizations {
            None => (self.given.clone(), None),
            Some(client) => {
                match tokio::time::timeout(
                    ORGANIZATION_LOOKUP_TIME,
                    organization_account_names(client),
                )
                .await
                {
                    Ok(Ok(found)) => {
                        tracing::info!(accounts = found.len(), "named the organisation's accounts");
                        (found.overridden_by(&self.given), None)
                    }
                    failed => {
                        let error = match failed {
                            Ok(Err(error)) => error,
                            _ => format!(
                                "organizations:ListAccounts took more than {} s",
                                ORGANIZATION_LOOKUP_TIME.as_secs()
                            ),
                        };
                        tracing::error!(%error, "could not look up the organisation's account names; posts show account IDs");
                        (
                            self.given.clone(),
                            Some(Instant::now() + ORGANIZATION_LOOKUP_RETRY),
                        )
                    }
                }
            }
        };
        let names = Arc::new(names);
        *self.known.lock().expect("never poisoned") = Some((names.clone(), retry_at));
        names
    }
}

/// Every account of the organisation with its name, page by page.
pub async fn organization_account_names(
    client: &aws_sdk_organizations::Client,
) -> Result<AccountNames, String> {
    let mut pairs = Vec::new();
    let mut next_token: Option<String> = None;
    loop {
        let page = client
            .list_accounts()
            .set_next_token(next_token.take())
            .send()
            .await
            .map_err(|error| {
                format!(
                    "organizations:ListAccounts: {}",
                    aws_errors::summary(&error)
                )
            })?;
        pairs.extend(page.accounts().iter().filter_map(|account| {
            let id = account.id()?.to_owned();
            let name = account.name()?.trim();
            (!name.is_empty()).then(|| (id, name.to_owned()))
        }));
        match page.next_token() {
            Some(token) if !token.is_empty() => next_token = Some(token.to_owned()),
            _ => break,
        }
    }
    Ok(pairs.into_iter().collect())
}

/// The active accounts of the watched organizational units (and the units below them), with
/// when each joined the organisation (seconds since 1970).
pub async fn unit_accounts(
    organizations: &aws_sdk_organizations::Client,
    units: &[String],
) -> Result<Vec<(String, i64)>, String> {
    unit_accounts_short_of(organizations, units, &[]).await
}

/// The same, not going into the units of `short_of` below them (units of their own).
pub async fn unit_accounts_short_of(
    organizations: &aws_sdk_organizations::Client,
    units: &[String],
    short_of: &[String],
) -> Result<Vec<(String, i64)>, String> {
    let mut accounts = Vec::new();
    let mut parents: Vec<String> = units.to_vec();
    let mut seen = std::collections::HashSet::new();
    while let Some(parent) = parents.pop() {
        let below = !units.contains(&parent);
        if !seen.insert(parent.clone()) || (below && short_of.contains(&parent)) {
            continue;
        }
        let mut pages = organizations
            .list_accounts_for_parent()
            .parent_id(&parent)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|error| aws_errors::summary(&error))?;
            for account in page.accounts() {
                let active = account
                    .state()
                    .is_none_or(|state| state.as_str() == "ACTIVE");
                if let (true, Some(id)) = (active, account.id()) {
                    let joined = account.joined_timestamp().map_or(0, |at| at.secs());
                    accounts.push((id.to_owned(), joined));
                }
            }
        }
        let mut children = organizations
            .list_children()
            .parent_id(&parent)
            .child_type(aws_sdk_organizations::types::ChildType::OrganizationalUnit)
            .into_paginator()
            .send();
        while let Some(page) = children.next().await {
            let page = page.map_err(|error| aws_errors::summary(&error))?;
            parents.extend(
                page.children()
                    .iter()
                    .filter_map(|child| child.id().map(str::to_owned)),
            );
        }
    }
    accounts.sort();
    accounts.dedup();
    Ok(accounts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_names_are_read_strictly() {
        let names = AccountNames::parse(" 111122223333=prod , 444455556666 = staging ").unwrap();
        assert_eq!(names.label("111122223333"), "prod (111122223333)");
        assert_eq!(names.label("444455556666"), "staging (444455556666)");
        assert_eq!(names.label("999999999999"), "999999999999");
        assert_eq!(AccountNames::parse("").unwrap(), AccountNames::default());
        for bad in ["prod", "1234=prod", "111122223333=", "11112222333x=prod"] {
            assert!(AccountNames::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_given_win_over_names_looked_up() {
        let looked_up: AccountNames = [
            ("111122223333".to_owned(), "Production".to_owned()),
            ("444455556666".to_owned(), "Staging".to_owned()),
        ]
        .into_iter()
        .collect();
        let given = AccountNames::parse("111122223333=prod").unwrap();
        let names = looked_up.overridden_by(&given);
        assert_eq!(names.len(), 2);
        assert_eq!(names.label("111122223333"), "prod (111122223333)");
        assert_eq!(names.label("444455556666"), "Staging (444455556666)");
    }
}
