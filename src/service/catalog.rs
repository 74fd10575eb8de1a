//! Browsing what one may request.

use super::Service;
use crate::domain::authz::Actor;
use crate::domain::eligibility::{may_request, may_see_catalog, RequestorFacts};
use crate::domain::ids::*;
use crate::domain::policy::Policy;
use crate::domain::DomainResult;
use crate::store::directory;
use crate::views::{CatalogOption, PackageCard, PackageStatus, Page};

pub const PAGE_SIZE: usize = 24;

impl Service {
    /// Packages this person may request, one page at a time, searchable by name,
    /// description and resource, filterable by catalog.
    #[tracing::instrument(name = "requestable_packages", skip_all, fields(actor = actor.id().0, catalog = catalog_filter.map(|c| c.0)))]
    pub async fn requestable_packages(
        &self,
        actor: &Actor,
        search: &str,
        catalog_filter: Option<CatalogId>,
        cursor: Option<&str>,
    ) -> DomainResult<Page<PackageCard>> {
        let mut conn = self.db.pool().acquire().await?;
        let known = self.catalog_snapshot(&mut conn).await?;
        let (groups, org_configured) = directory::requestor_context(&mut conn, &actor.user).await?;
        let facts = RequestorFacts { user: &actor.user, groups: &groups, org_configured };
        let after = cursor.and_then(decode_cursor);
        let mut eligible = known
            .browsable(&actor.user, search, catalog_filter, after.as_ref().map(|(n, id)| (n.as_str(), *id)))
            .filter_map(|(package, catalog)| {
                let policies: Vec<&Policy> =
                    known.policies_of(package.id).iter().filter(|p| may_request(&facts, p)).collect();
                (!policies.is_empty()).then_some((package, catalog, policies))
            });
        let page: Vec<_> = eligible.by_ref().take(PAGE_SIZE).collect();
        // Another eligible package follows: the next page starts after this one's last.
        let next = match eligible.next() {
            Some(_) => page.last().map(|(p, _, _)| encode_cursor(&p.name, p.id.0)),
            None => None,
        };
        let (held, pending) = crate::store::assignments::held_and_awaited_packages(&mut conn, actor.id()).await?;
        let items = page
            .into_iter()
            .filter_map(|(package, catalog, eligible)| {
                let first = eligible.first()?;
                Some(PackageCard {
                    id: package.id.0,
                    name: package.name.clone(),
                    description: package.description.clone(),
                    catalog: catalog.name.clone(),
                    resources: known.roles_of(package.id),
                    approval_stages: eligible.iter().map(|p| p.approval.stages.len() as u32).max().unwrap_or(0),
                    expiration: first.expiration.describe(),
                    status: if held.contains(&package.id) {
                        PackageStatus::Held
                    } else if pending.contains(&package.id) {
                        PackageStatus::Pending
                    } else {
                        PackageStatus::Available
                    },
                })
            })
            .collect();
        Ok(Page { items, next, as_of: self.now().timestamp_millis() })
    }

    /// Catalogs for the filter on My Access: enabled ones (externally visible for guests).
    #[tracing::instrument(name = "catalog_options", skip_all, fields(actor = actor.id().0))]
    pub async fn catalog_options(&self, actor: &Actor) -> DomainResult<Vec<CatalogOption>> {
        let mut conn = self.db.pool().acquire().await?;
        Ok(self
            .catalog_snapshot(&mut conn)
            .await?
            .catalogs()
            .iter()
            .filter(|c| may_see_catalog(&actor.user, c))
            .map(|c| CatalogOption { id: c.id.0, name: c.name.clone() })
            .collect())
    }
}

/// Keyset cursor: the last row's sort key (a name and an id), opaque to clients.
pub(super) fn encode_cursor(name: &str, id: i64) -> String {
    hex::encode(format!("{id}:{name}"))
}

pub(super) fn decode_cursor(cursor: &str) -> Option<(String, i64)> {
    let bytes = hex::decode(cursor).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (id, name) = text.split_once(':')?;
    Some((name.to_owned(), id.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trip_and_garbage() {
        let c = encode_cursor("Sales: CRM", 42);
        assert_eq!(decode_cursor(&c), Some(("Sales: CRM".into(), 42)));
        assert_eq!(decode_cursor("zz"), None);
        assert_eq!(decode_cursor(""), None);
    }
}
