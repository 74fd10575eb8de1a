//! SCIM 2.0 inbound: the identity provider creates, changes and removes people and groups
//! (`/scim/v2`). A SCIM User is a person here (their email, name, department, job title and
//! manager follow the document; `active: false` and DELETE are the leaver path); a SCIM Group
//! is a directory group fed by SCIM (its members follow the document). Each change is one
//! transaction, guarded by the resource's version, audited as the token's owner with the
//! token's id.

use serde_json::{json, Map, Value};

use super::Service;
use crate::domain::audit::AuditEvent;
use crate::domain::ids::UserId;
use crate::domain::scim::{self as doc, Kind, ScimError, ENTERPRISE_URN};
use crate::domain::token::Scope;
use crate::domain::DomainError;
use crate::service::tokens::TokenCaller;
use crate::store::scim::{self as store, Narrow, PersonFields, StoredResource};
use crate::store::Tx;

type Result<T> = std::result::Result<T, ScimError>;

impl From<DomainError> for ScimError {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::Unauthenticated => ScimError::new(401, None, "send an API token with the scim scope"),
            DomainError::Forbidden(why) => ScimError::new(403, None, why),
            DomainError::NotFound(what) => ScimError::new(404, None, format!("{what} not found")),
            DomainError::Invalid { message, .. } => ScimError::invalid_value(message),
            DomainError::Conflict(why) | DomainError::AlreadyDecided(why) => ScimError::new(409, None, why),
            DomainError::Stale(why) => ScimError::new(412, None, why),
            DomainError::Internal(detail) => {
                tracing::error!(%detail, "SCIM request failed");
                ScimError::new(500, None, "something went wrong on our side")
            }
        }
    }
}

impl From<sqlx::Error> for ScimError {
    fn from(e: sqlx::Error) -> Self {
        if crate::store::is_unique_violation(&e) {
            ScimError::new(409, Some("uniqueness"), "a resource with that name or email exists already")
        } else {
            DomainError::from(e).into()
        }
    }
}

/// A resource as stored: its id, document and version, and when it was made and changed
/// (Unix ms).
#[derive(Clone, Debug, PartialEq)]
pub struct ScimResource {
    pub kind: Kind,
    pub id: i64,
    pub document: Map<String, Value>,
    pub version: i64,
    pub created: i64,
    pub updated: i64,
}

impl ScimResource {
    fn from_stored(kind: Kind, s: StoredResource) -> Result<Self> {
        let document = match serde_json::from_str(&s.document) {
            Ok(Value::Object(o)) => o,
            _ => {
                return Err(DomainError::Internal(format!(
                    "the SCIM document of {} {} is unreadable",
                    kind.as_str(),
                    s.object_id
                ))
                .into())
            }
        };
        Ok(Self { kind, id: s.object_id, document, version: s.version, created: s.created_at, updated: s.updated_at })
    }

    /// The resource as served (`id`, `schemas`, `meta`), `location` under `base`.
    pub fn served(&self, base: &str) -> Map<String, Value> {
        let mut out = Map::new();
        let mut schemas = vec![json!(self.kind.schema().id)];
        schemas.extend(self.kind.extensions().iter().filter(|e| self.document.contains_key(e.id)).map(|e| json!(e.id)));
        out.insert("schemas".into(), Value::Array(schemas));
        out.insert("id".into(), json!(self.id.to_string()));
        out.extend(self.document.clone());
        let at = |ms: i64| chrono::DateTime::from_timestamp_millis(ms).map(|t| t.to_rfc3339()).unwrap_or_default();
        out.insert(
            "meta".into(),
            json!({
                "resourceType": self.kind.as_str(),
                "created": at(self.created),
                "lastModified": at(self.updated),
                "location": format!("{base}{}/{}", self.kind.endpoint(), self.id),
                "version": self.etag(),
            }),
        );
        out
    }

    pub fn etag(&self) -> String {
        format!("W/\"{}\"", self.version)
    }
}

/// Who may call SCIM: a token with the `scim` scope whose owner is an administrator now.
fn provider(caller: &TokenCaller) -> Result<UserId> {
    if !caller.scopes.has(Scope::Scim) {
        return Err(ScimError::new(403, None, "this token does not have the \"scim\" scope"));
    }
    if !caller.administrator {
        return Err(ScimError::new(403, None, "only an administrator's token may provision people and groups"));
    }
    Ok(caller.actor.id())
}

/// The one resource a filter asks for by its name or externalId (through their indexes).
fn narrow_of(kind: Kind, filter: Option<&scim_v2::filter::Filter>) -> Narrow<'_> {
    use scim_v2::filter::{AttrExp, CompValue, CompareOp, Filter};
    if let Some(Filter::Attr(AttrExp::Comparison(path, CompareOp::Eq, CompValue::Str(value)))) = filter {
        if path.uri.is_none() && path.sub_attr.is_none() {
            if path.name.eq_ignore_ascii_case(kind.name_attr()) {
                return Narrow::Name(value);
            }
            if path.name.eq_ignore_ascii_case("externalId") {
                return Narrow::ExternalId(value);
            }
        }
    }
    Narrow::All
}

/// What is read at most per page of a list (the filter is evaluated here, over documents).
const LIST_BATCH: i64 = 500;

/// A person's directory fields as their document gives them: email (the primary address, the
/// first, or the userName), name, department, title, manager.
struct Person {
    email: String,
    display_name: String,
    department: String,
    job_title: String,
    manager: Option<i64>,
    active: bool,
}

impl Person {
    fn fields(&self) -> PersonFields<'_> {
        PersonFields {
            email: &self.email,
            display_name: &self.display_name,
            department: &self.department,
            job_title: &self.job_title,
            manager: self.manager,
        }
    }
}

fn text(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned)
}

fn person_of(d: &Map<String, Value>) -> Result<Person> {
    let user_name = text(d.get("userName")).unwrap_or_default();
    let emails = d.get("emails").and_then(Value::as_array).cloned().unwrap_or_default();
    let primary = emails.iter().find(|e| e.get("primary") == Some(&Value::Bool(true))).or(emails.first());
    // Emails are kept in lowercase here: compared as the provider sent them, a change of case
    // would look like a new address.
    let email = text(primary.and_then(|e| e.get("value"))).unwrap_or_else(|| user_name.clone()).to_lowercase();
    let name = d.get("name");
    let joined = [name.and_then(|n| n.get("givenName")), name.and_then(|n| n.get("familyName"))]
        .into_iter()
        .filter_map(text)
        .collect::<Vec<_>>()
        .join(" ");
    let display_name = text(d.get("displayName"))
        .or_else(|| text(name.and_then(|n| n.get("formatted"))))
        .or_else(|| Some(joined).filter(|j| !j.is_empty()))
        .unwrap_or_else(|| user_name.clone());
    let enterprise = d.get(ENTERPRISE_URN);
    let manager = match text(enterprise.and_then(|e| e.get("manager")).and_then(|m| m.get("value"))) {
        None => None,
        Some(id) => Some(id.parse::<i64>().map_err(|_| {
            ScimError::invalid_value(format!("manager: \"{}\" is not the id of a User provisioned here", cut(&id)))
        })?),
    };
    // The key people are known by here: an email, else the userName as the provider gave it
    // (SCIM does not make userName an email; such a person signs in once their email comes).
    if email.is_empty() || email.len() > 254 || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ScimError::invalid_value(format!(
            "emails: \"{}\" cannot name a person (1 to 254 characters, no spaces)",
            cut(&email)
        )));
    }
    let department = text(enterprise.and_then(|e| e.get("department"))).unwrap_or_default();
    let job_title = text(d.get("title")).unwrap_or_default();
    for (attr, value) in [("displayName", &display_name), ("department", &department), ("title", &job_title)] {
        if value.chars().count() > MAX_TEXT {
            return Err(ScimError::invalid_value(format!("{attr}: at most {MAX_TEXT} characters")));
        }
    }
    Ok(Person { email, display_name, department, job_title, manager, active: active(d) })
}

/// The longest name, department or title a provider may set (as sign-in takes them).
const MAX_TEXT: usize = 200;
/// The largest document kept for a resource (the provider's whole User or Group, as JSON).
const MAX_DOCUMENT: usize = 64 * 1024;

/// A User is active unless its document says `active: false`.
fn active(d: &Map<String, Value>) -> bool {
    d.get("active") != Some(&Value::Bool(false))
}

/// A document small enough to keep, as its text.
fn kept(document: &Map<String, Value>) -> Result<String> {
    let text = Value::Object(document.clone()).to_string();
    if text.len() > MAX_DOCUMENT {
        return Err(ScimError::invalid_value(format!(
            "the resource is too large (at most {} KiB)",
            MAX_DOCUMENT / 1024
        )));
    }
    Ok(text)
}

/// Administrators are managed in the portal: a provider does not take one over (link them,
/// change their email) or take them out (deactivate, delete) — not even the token's owner,
/// who is one.
async fn not_an_administrator(tx: &mut Tx, user: UserId, what: &str) -> Result<()> {
    if crate::store::directory::has_global_role(tx, user, crate::domain::model::Role::Administrator).await? {
        return Err(ScimError::new(
            409,
            None,
            format!("User {}: an administrator is {what} in the portal, not through SCIM", user.0),
        ));
    }
    Ok(())
}

fn cut(s: &str) -> String {
    s.chars().take(40).collect()
}

fn name_key(kind: Kind, d: &Map<String, Value>) -> String {
    text(d.get(kind.name_attr())).unwrap_or_default().to_lowercase()
}

fn external_id(d: &Map<String, Value>) -> Option<String> {
    text(d.get("externalId"))
}

/// The people a group's document names as members (each must be a person here).
fn member_ids(d: &Map<String, Value>) -> Result<Vec<i64>> {
    let mut ids = Vec::new();
    for m in d.get("members").and_then(Value::as_array).into_iter().flatten() {
        if text(m.get("type")).is_some_and(|t| !t.eq_ignore_ascii_case("User")) {
            return Err(ScimError::invalid_value("members: only people (type User) can be members here"));
        }
        let value = text(m.get("value")).ok_or_else(|| ScimError::invalid_value("members: each needs a value"))?;
        let id = value.parse::<i64>().map_err(|_| {
            ScimError::invalid_value(format!("members: \"{}\" is not a User provisioned here", cut(&value)))
        })?;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok(ids)
}

impl Service {
    /// One resource.
    #[tracing::instrument(name = "scim_get", skip_all, fields(kind = kind.as_str(), id))]
    pub async fn scim_get(&self, caller: &TokenCaller, kind: Kind, id: i64) -> Result<ScimResource> {
        provider(caller)?;
        let mut conn = self.db.pool().acquire().await.map_err(ScimError::from)?;
        let found = store::get(&mut conn, kind.as_str(), id).await?;
        let found = found.ok_or_else(|| ScimError::new(404, None, format!("{} {id} not found", kind.as_str())))?;
        ScimResource::from_stored(kind, found)
    }

    /// The resources passing `filter`, `count` of them from the `start`th (1-based), and how
    /// many pass in all. A filter on the naming attribute or externalId reads through its
    /// index; any other is evaluated over the documents, a batch at a time.
    #[tracing::instrument(name = "scim_list", skip_all, fields(kind = kind.as_str(), start, count))]
    pub async fn scim_list(
        &self,
        caller: &TokenCaller,
        kind: Kind,
        filter: Option<&scim_v2::filter::Filter>,
        start: usize,
        count: usize,
    ) -> Result<(usize, Vec<ScimResource>)> {
        provider(caller)?;
        let lowered;
        let narrow = match narrow_of(kind, filter) {
            Narrow::Name(n) => {
                lowered = n.to_lowercase();
                Narrow::Name(&lowered)
            }
            other => other,
        };
        let mut total = 0;
        let mut page = Vec::new();
        let mut after = 0;
        loop {
            let batch = {
                let mut conn = self.db.pool().acquire().await.map_err(ScimError::from)?;
                store::page(&mut conn, kind.as_str(), narrow, after, LIST_BATCH).await?
            };
            let full = batch.len() as i64 == LIST_BATCH;
            for stored in batch {
                after = stored.object_id;
                let resource = ScimResource::from_stored(kind, stored)?;
                if filter.is_none_or(|f| doc::matches(kind, &resource.served(""), f)) {
                    total += 1;
                    if total >= start && page.len() < count {
                        page.push(resource);
                    }
                }
            }
            if !full {
                break;
            }
        }
        Ok((total, page))
    }

    /// Create a resource from what the provider sent.
    #[tracing::instrument(name = "scim_create", skip_all, fields(kind = kind.as_str(), token = caller.token))]
    pub async fn scim_create(&self, caller: &TokenCaller, kind: Kind, body: &Value) -> Result<ScimResource> {
        provider(caller)?;
        let document = doc::normalize(kind, body)?;
        let key = name_key(kind, &document);
        let now = crate::store::to_ms(self.now());
        let mut tx = self.db.begin().await.map_err(ScimError::from)?;
        if store::by_name(&mut tx, kind.as_str(), &key).await?.is_some() {
            return Err(ScimError::new(
                409,
                Some("uniqueness"),
                format!("a {} with that {} exists already", kind.as_str(), kind.name_attr()),
            ));
        }
        let mut events = Vec::new();
        let id = match kind {
            Kind::User => self.create_person(&mut tx, caller, &document, now, &mut events).await?,
            Kind::Group => self.create_group(&mut tx, caller, &document, now, &mut events).await?,
        };
        let text = kept(&document)?;
        store::insert(&mut tx, kind.as_str(), id, (&key, external_id(&document).as_deref()), &text, now).await?;
        self.commit(tx, events).await?;
        self.rules_after(kind, id).await;
        Ok(ScimResource { kind, id, document, version: 1, created: now, updated: now })
    }

    /// Replace a resource's document (PUT), or change it with PATCH operations; `if_match`
    /// is the version the caller saw (`None`: whatever it is now).
    #[tracing::instrument(name = "scim_change", skip_all, fields(kind = kind.as_str(), id, token = caller.token))]
    pub async fn scim_change(
        &self,
        caller: &TokenCaller,
        kind: Kind,
        id: i64,
        change: ScimChange<'_>,
        if_match: Option<i64>,
    ) -> Result<ScimResource> {
        provider(caller)?;
        let now = crate::store::to_ms(self.now());
        let mut tx = self.db.begin().await.map_err(ScimError::from)?;
        let stored = self.held(&mut tx, kind, id, if_match).await?;
        let before = ScimResource::from_stored(kind, stored)?;
        let document = match change {
            ScimChange::Replace(body) => doc::normalize(kind, body)?,
            ScimChange::Patch(operations) => {
                let mut d = before.document.clone();
                doc::patch(kind, &mut d, operations)?;
                d
            }
        };
        let key = name_key(kind, &document);
        if key != name_key(kind, &before.document) {
            if let Some(other) = store::by_name(&mut tx, kind.as_str(), &key).await?.filter(|o| *o != id) {
                return Err(ScimError::new(
                    409,
                    Some("uniqueness"),
                    format!("{} {other} has that {} already", kind.as_str(), kind.name_attr()),
                ));
            }
        }
        let mut events = Vec::new();
        match kind {
            Kind::User => {
                let was_active = active(&before.document);
                self.change_person(&mut tx, caller, id, (&document, was_active), now, &mut events).await?
            }
            Kind::Group => self.change_group(&mut tx, caller, id, &document, &mut events).await?,
        }
        let text = kept(&document)?;
        let ext = external_id(&document);
        if !store::update(&mut tx, kind.as_str(), id, before.version, (&key, ext.as_deref()), &text, now).await? {
            return Err(ScimError::new(409, None, "the resource changed meanwhile: try again"));
        }
        self.commit(tx, events).await?;
        self.rules_after(kind, id).await;
        Ok(ScimResource { document, version: before.version + 1, updated: now, ..before })
    }

    /// Remove a resource: a person leaves (the leaver path: access taken back, sessions
    /// ended; they stay in the audit trail), a group loses its members. Either is no longer
    /// served.
    #[tracing::instrument(name = "scim_delete", skip_all, fields(kind = kind.as_str(), id, token = caller.token))]
    pub async fn scim_delete(&self, caller: &TokenCaller, kind: Kind, id: i64, if_match: Option<i64>) -> Result<()> {
        let actor = provider(caller)?;
        let mut tx = self.db.begin().await.map_err(ScimError::from)?;
        let stored = self.held(&mut tx, kind, id, if_match).await?;
        let mut events = Vec::new();
        let reason = "SCIM";
        match kind {
            Kind::User => {
                not_an_administrator(&mut tx, UserId(id), "taken out").await?;
                self.set_active_in(&mut tx, Some(actor), UserId(id), false, &mut events).await?;
                events.push(AuditEvent::new(Some(actor), "user.deprovisioned", "user", id).reason(reason));
            }
            Kind::Group => {
                let (_, removed) = store::set_members(&mut tx, id, &[]).await?;
                events.push(
                    AuditEvent::new(Some(actor), "group.deprovisioned", "group", id)
                        .before(json!({"members": removed}))
                        .reason(reason),
                );
            }
        }
        if !store::delete(&mut tx, kind.as_str(), id, stored.version).await? {
            return Err(ScimError::new(409, None, "the resource changed meanwhile: try again"));
        }
        self.commit(tx, events).await?;
        self.rules_after(kind, id).await;
        Ok(())
    }

    /// The resource, locked for this transaction, at the version `if_match` names (412
    /// otherwise).
    async fn held(&self, tx: &mut Tx, kind: Kind, id: i64, if_match: Option<i64>) -> Result<StoredResource> {
        self.lock(tx, kind, id).await?;
        let stored = store::get(tx, kind.as_str(), id)
            .await?
            .ok_or_else(|| ScimError::new(404, None, format!("{} {id} not found", kind.as_str())))?;
        if if_match.is_some_and(|v| v != stored.version) {
            return Err(ScimError::new(412, None, "the resource changed since that version: read it again"));
        }
        Ok(stored)
    }

    /// Two changes of one resource take turns: a person by their row (as every change of a
    /// person does), a group by its resource row.
    async fn lock(&self, tx: &mut Tx, kind: Kind, id: i64) -> Result<()> {
        match kind {
            Kind::User => self.db.lock_user(tx, UserId(id)).await?,
            Kind::Group => {
                if self.db.backend() == crate::store::Backend::Postgres {
                    store::lock_group(tx, id).await?;
                }
            }
        }
        Ok(())
    }

    async fn create_person(
        &self,
        tx: &mut Tx,
        caller: &TokenCaller,
        d: &Map<String, Value>,
        now: i64,
        events: &mut Vec<AuditEvent>,
    ) -> Result<i64> {
        let actor = caller.actor.id();
        let p = person_of(d)?;
        self.check_manager(tx, None, p.manager).await?;
        let fields = p.fields();
        let reason = "SCIM";
        // Someone already here by that email (signed in before, imported) is the same person.
        let id = match crate::store::directory::user_by_email(tx, &p.email).await? {
            Some((user, issuer)) => {
                if issuer.as_deref() == Some(crate::store::directory::SERVICE_ACCOUNT_ISSUER) {
                    return Err(ScimError::new(
                        409,
                        Some("uniqueness"),
                        "that email is a service account's, not a person's",
                    ));
                }
                if store::linked(tx, Kind::User.as_str(), user.id.0).await? {
                    return Err(ScimError::new(409, Some("uniqueness"), "a User with that email exists already"));
                }
                not_an_administrator(tx, user.id, "managed").await?;
                self.db.lock_user(tx, user.id).await?;
                // Read again under the lock: the audit's "before" is what was changed.
                let user = crate::store::directory::user(tx, user.id)
                    .await?
                    .ok_or_else(|| ScimError::new(409, None, "that person was removed meanwhile: try again"))?;
                store::update_person(tx, user.id.0, &fields, now).await?;
                events.push(
                    AuditEvent::new(Some(actor), "user.provisioned", "user", user.id.0)
                        .before(json!({"email": user.email, "name": user.display_name, "department": user.department,
                                       "job_title": user.job_title, "manager": user.manager_id.map(|m| m.0)}))
                        .after(json!({"fields": fields, "linked": true}))
                        .reason(reason),
                );
                // Linking keeps whether they may sign in: someone disabled here stays so.
                user.id.0
            }
            None => {
                let new = crate::store::directory::NewUser {
                    email: &p.email,
                    display_name: &p.display_name,
                    department: &p.department,
                    job_title: &p.job_title,
                    manager_id: p.manager.map(UserId),
                    kind: crate::domain::model::UserKind::Member,
                    connected_org_id: None,
                };
                let id = crate::store::directory::insert_user(tx, &new, now).await?;
                events.push(
                    AuditEvent::new(Some(actor), "user.provisioned", "user", id.0)
                        .after(json!({"fields": fields, "linked": false}))
                        .reason(reason),
                );
                id.0
            }
        };
        if !p.active {
            self.set_active_in(tx, Some(actor), UserId(id), false, events).await?;
        }
        Ok(id)
    }

    async fn change_person(
        &self,
        tx: &mut Tx,
        caller: &TokenCaller,
        id: i64,
        (d, was_active): (&Map<String, Value>, bool),
        now: i64,
        events: &mut Vec<AuditEvent>,
    ) -> Result<()> {
        let actor = caller.actor.id();
        let p = person_of(d)?;
        self.check_manager(tx, Some(id), p.manager).await?;
        let user = crate::store::directory::user(tx, UserId(id))
            .await?
            .ok_or_else(|| ScimError::new(404, None, format!("User {id} not found")))?;
        let fields = p.fields();
        let was = PersonFields {
            email: &user.email,
            display_name: &user.display_name,
            department: &user.department,
            job_title: &user.job_title,
            manager: user.manager_id.map(|m| m.0),
        };
        if fields.email != was.email || (was_active && !p.active) {
            not_an_administrator(tx, UserId(id), "managed").await?;
        }
        if fields != was {
            store::update_person(tx, id, &fields, now).await?;
            events.push(
                AuditEvent::new(Some(actor), "user.updated", "user", id)
                    .before(json!(was))
                    .after(json!(fields))
                    .reason("SCIM"),
            );
        }
        // Only a change of `active` in the document moves the person: a provider changing
        // their title does not bring back someone disabled here.
        if p.active != was_active {
            self.set_active_in(tx, Some(actor), UserId(id), p.active, events).await?;
        }
        Ok(())
    }

    /// After a User changed: the automatic-assignment rules for them at once (as sign-in and
    /// import do); a failure is left to the rules' next pass. Groups wait for that pass.
    async fn rules_after(&self, kind: Kind, id: i64) {
        if kind == Kind::User {
            if let Err(e) = self.apply_rules_for(UserId(id)).await {
                tracing::warn!(user = id, error = %e, "applying the rules after a SCIM change failed: the next pass does");
            }
        }
    }

    /// A manager must be someone here, and not the person themselves.
    async fn check_manager(&self, tx: &mut Tx, person: Option<i64>, manager: Option<i64>) -> Result<()> {
        let Some(manager) = manager else { return Ok(()) };
        if Some(manager) == person {
            return Err(ScimError::invalid_value("manager: a person is not their own manager"));
        }
        if store::existing_people(tx, &[manager]).await?.is_empty() {
            return Err(ScimError::invalid_value(format!("manager: no User {manager} here")));
        }
        Ok(())
    }

    async fn create_group(
        &self,
        tx: &mut Tx,
        caller: &TokenCaller,
        d: &Map<String, Value>,
        now: i64,
        events: &mut Vec<AuditEvent>,
    ) -> Result<i64> {
        let name = text(d.get("displayName")).unwrap_or_default();
        let members = self.check_members(tx, d).await?;
        let id = match store::group_by_name(tx, &name).await? {
            // A group of that name fed by SCIM before (and deleted since) comes back.
            Some((id, source)) if source == "scim" => id,
            Some(_) => {
                return Err(ScimError::new(
                    409,
                    Some("uniqueness"),
                    "a group of that name is kept here or fed by sign-in: give this one another name",
                ))
            }
            None => store::insert_group(tx, &name, now).await?,
        };
        let (added, _) = store::set_members(tx, id, &members).await?;
        events.push(
            AuditEvent::new(Some(caller.actor.id()), "group.provisioned", "group", id)
                .after(json!({"name": name, "members": added}))
                .reason("SCIM"),
        );
        Ok(id)
    }

    async fn change_group(
        &self,
        tx: &mut Tx,
        caller: &TokenCaller,
        id: i64,
        d: &Map<String, Value>,
        events: &mut Vec<AuditEvent>,
    ) -> Result<()> {
        let name = text(d.get("displayName")).unwrap_or_default();
        let members = self.check_members(tx, d).await?;
        let renamed = match store::group_by_name(tx, &name).await? {
            Some((other, _)) if other != id => {
                return Err(ScimError::new(409, Some("uniqueness"), "another group has that name"));
            }
            Some(_) => false,
            None => {
                store::rename_group(tx, id, &name).await?;
                true
            }
        };
        let (added, removed) = store::set_members(tx, id, &members).await?;
        if renamed || !added.is_empty() || !removed.is_empty() {
            events.push(
                AuditEvent::new(Some(caller.actor.id()), "group.updated", "group", id)
                    .after(json!({"name": name, "renamed": renamed, "added": added, "removed": removed}))
                    .reason("SCIM"),
            );
        }
        Ok(())
    }

    async fn check_members(&self, tx: &mut Tx, d: &Map<String, Value>) -> Result<Vec<i64>> {
        let members = member_ids(d)?;
        let found = store::existing_people(tx, &members).await?;
        if let Some(missing) = members.iter().find(|m| !found.contains(m)) {
            return Err(ScimError::invalid_value(format!("members: no User {missing} here")));
        }
        Ok(members)
    }
}

/// How a resource is changed: replaced whole (PUT) or by PATCH operations.
pub enum ScimChange<'a> {
    Replace(&'a Value),
    Patch(&'a [scim_v2::models::others::PatchOperation]),
}
