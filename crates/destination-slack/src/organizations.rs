//! The organisation's account names, from AWS Organizations (ListAccounts answers in the
//! management account or a delegated administrator account only).

use crate::layout::AccountNames;

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
