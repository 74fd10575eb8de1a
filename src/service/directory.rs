//! Who is signed in, and what the navigation shows them.

use super::Service;
use crate::domain::authz::Actor;
use crate::domain::ids::UserId;
use crate::domain::{DomainError, DomainResult};
use crate::store::{directory, Tx};
use crate::views::{DemoPerson, Viewer};

impl Service {
    /// The actor behind a session: `None` when the user is unknown or disabled (a disabled
    /// user's sessions stop working at their next request).
    #[tracing::instrument(name = "actor", skip_all, fields(user = user.0))]
    pub async fn actor(&self, user: UserId) -> DomainResult<Option<Actor>> {
        let mut conn = self.db.pool().acquire().await?;
        let Some(user) = directory::user(&mut conn, user).await? else {
            return Ok(None);
        };
        if !user.is_active() {
            return Ok(None);
        }
        let roles = directory::roles(&mut conn, user.id).await?;
        Ok(Some(Actor { user, roles }))
    }

    /// What the page chrome needs: name, which areas to show, the approvals count.
    #[tracing::instrument(name = "viewer", skip_all, fields(actor = actor.id().0))]
    pub async fn viewer(&self, actor: &Actor) -> DomainResult<Viewer> {
        let mut conn = self.db.pool().acquire().await?;
        let (pending, approver, reviews) = crate::store::requests::approver_standing(&mut conn, actor.id()).await?;
        Ok(Viewer {
            id: actor.id().0,
            name: actor.user.display_name.clone(),
            email: actor.user.email.clone(),
            department: actor.user.department.clone(),
            job_title: actor.user.job_title.clone(),
            is_admin: actor.is_admin(),
            admin_area: actor.has_admin_area(),
            approver,
            pending_approvals: pending,
            pending_reviews: reviews,
        })
    }

    /// The people offered by demo sign-in.
    #[tracing::instrument(name = "demo_people", skip_all)]
    pub async fn demo_people(&self) -> DomainResult<Vec<DemoPerson>> {
        let mut conn = self.db.pool().acquire().await?;
        let users = directory::active_users(&mut conn, 100).await?;
        let ids: Vec<UserId> = users.iter().map(|u| u.id).collect();
        let roles = directory::roles_of_users(&mut conn, &ids).await?;
        let mut out = Vec::with_capacity(users.len());
        for u in users {
            let mut names: Vec<String> =
                roles.iter().filter(|(id, _)| *id == u.id).map(|(_, r)| r.as_str().replace('_', " ")).collect();
            names.sort();
            names.dedup();
            out.push(DemoPerson {
                id: u.id.0,
                name: u.display_name,
                email: u.email,
                title: u.job_title,
                department: u.department,
                roles: names,
            });
        }
        Ok(out)
    }
}

/// What the identity provider vouched for at sign-in (claims already verified).
#[derive(Clone, Debug, Default)]
pub struct ProviderIdentity {
    pub issuer: String,
    pub subject: String,
    pub email: String,
    /// The provider says it verified the email address (`email_verified`).
    pub email_verified: bool,
    pub display_name: String,
    pub department: Option<String>,
    pub job_title: Option<String>,
    /// The manager's email, when the provider sends one.
    pub manager_email: Option<String>,
    /// Group names, when the provider sends a groups claim.
    pub groups: Option<Vec<String>>,
    /// The person's time zone (the `zoneinfo` claim), as sent: used when the tz database
    /// knows it.
    pub time_zone: Option<String>,
}

/// The operator's rules for people arriving from the identity provider: the sign-in gate,
/// who becomes an administrator at sign-in (bootstrap by configuration), and which existing
/// accounts may be linked to a provider identity by their email.
#[derive(Clone, Debug, Default)]
pub struct AdminBootstrap {
    pub emails: Vec<String>,
    pub group: Option<String>,
    /// Lower-case email domains whose never-linked accounts may be linked, on a verified email.
    pub link_domains: Vec<String>,
    /// The sign-in gate for members: an email in one of these lower-case domains (empty: any
    /// domain).
    pub sign_in_domains: Vec<String>,
    /// The sign-in gate for members: the groups claim must name this group.
    pub sign_in_group: Option<String>,
    /// The operator vouches that every email the provider sends is verified (providers that
    /// send no `email_verified` claim, such as Entra ID for its own tenants). Off: a sign-in
    /// without a verified email is refused.
    pub trust_provider_emails: bool,
}

/// How a person arrives: as a member (held to the sign-in gate), or as a guest of the
/// connected organisation their email's domain belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Arrival {
    Member,
    Guest(crate::domain::ids::OrgId),
}

/// The lower-case domain of an email address (a trailing dot dropped).
fn email_domain(email: &str) -> String {
    email.rsplit_once('@').map(|(_, d)| d.trim_end_matches('.').to_ascii_lowercase()).unwrap_or_default()
}

/// A domain and every parent domain on a label boundary: `a.b.example` → `a.b.example`,
/// `b.example`, `example`.
fn domain_and_parents(domain: &str) -> Vec<&str> {
    let mut out = vec![domain];
    let mut rest = domain;
    while let Some((_, parent)) = rest.split_once('.') {
        out.push(parent);
        rest = parent;
    }
    out
}

/// Longest display name, department, job title or group name taken from a provider, and the
/// most groups taken from one sign-in.
const MAX_PROVIDER_TEXT: usize = 200;
const MAX_PROVIDER_GROUPS: usize = 500;

fn capped(text: &str) -> String {
    text.trim().chars().take(MAX_PROVIDER_TEXT).collect()
}

impl AdminBootstrap {
    /// May an existing, never-linked account with this email be linked to this identity?
    fn may_link(&self, identity: &ProviderIdentity) -> Result<(), &'static str> {
        if !self.link_domains.contains(&email_domain(&identity.email)) {
            return Err("accounts of your email domain are not linked automatically");
        }
        Ok(())
    }

    /// Why a member may not sign in, if they may not: the gate's domains and group.
    fn member_gate(&self, identity: &ProviderIdentity) -> Result<(), &'static str> {
        if !self.sign_in_domains.is_empty() && !self.sign_in_domains.contains(&email_domain(&identity.email)) {
            return Err("people of your email domain cannot sign in here");
        }
        if let Some(group) = &self.sign_in_group {
            if !identity.groups.as_ref().is_some_and(|gs| gs.iter().any(|g| g == group)) {
                return Err("you are not in the group of people who may sign in here");
            }
        }
        Ok(())
    }

    /// The operator's email list names this person (emails are verified by now).
    fn admits_email(&self, identity: &ProviderIdentity) -> bool {
        self.emails.iter().any(|e| e.eq_ignore_ascii_case(&identity.email))
    }
}

/// The conflict of a sign-in whose email another person holds (or a racing sign-in of the
/// same new person just took): tried once more, then answered 409.
const EMAIL_TAKEN: &str = "this email address already belongs to another person here";

/// A sign-in refused by the rules: logged, audited on the person when they are known, and
/// answered 403 with the reason.
struct Refusal {
    user: Option<UserId>,
    action: &'static str,
    why: &'static str,
}

impl Service {
    /// Sign-in through the identity provider. A person is their (issuer, subject): the person
    /// is found by it, or created (just in time). The email must be verified (or vouched for
    /// by the operator); the sign-in gate comes next — a new person whose email is in a
    /// connected organisation's domain (or a subdomain) arrives as its guest, anyone else is
    /// a member held to the allowed domains and the required group. Only then is an existing
    /// account linked by email: when its domain is one the operator allows and it was never
    /// linked — otherwise the sign-in is refused and the attempt audited. The groups claim
    /// sets provider-fed group memberships only (a claim naming a local group does not join
    /// it); administrators are bootstrapped by configuration, members only. A disabled person
    /// is refused (read under their lock, as disabling takes it). Emails are kept in lower
    /// case; an email that belongs to someone else is a conflict (409), also when two
    /// sign-ins of one new person race.
    #[tracing::instrument(name = "sign_in_from_provider", skip_all, fields(issuer = %crate::auth::sanitize_for_log(&identity.issuer)))]
    pub async fn sign_in_from_provider(
        &self,
        identity: &ProviderIdentity,
        admins: &AdminBootstrap,
    ) -> DomainResult<UserId> {
        let mut identity = identity.clone();
        identity.email = identity.email.trim().to_lowercase();
        identity.display_name = capped(&identity.display_name);
        identity.department = identity.department.as_deref().map(capped);
        identity.job_title = identity.job_title.as_deref().map(capped);
        if let Some(groups) = identity.groups.as_mut() {
            if groups.len() > MAX_PROVIDER_GROUPS {
                tracing::warn!(count = groups.len(), "groups claim cut to {MAX_PROVIDER_GROUPS}");
                groups.truncate(MAX_PROVIDER_GROUPS);
            }
            groups.retain(|g| !g.trim().is_empty() && g.chars().count() <= MAX_PROVIDER_TEXT);
        }
        if identity.email.is_empty() || !identity.email.contains('@') {
            return Err(DomainError::invalid("email", "the identity provider sent no email address for you"));
        }
        // A new person whose sign-in raced another of their own (two tabs) finds themselves on
        // the second try.
        let user = match self.sign_in_once(&identity, admins).await {
            Err(DomainError::Conflict(why)) if why == EMAIL_TAKEN => self.sign_in_once(&identity, admins).await,
            other => other,
        }?;
        // What the provider says of them may have changed which rules match them (a new
        // department, groups): their birthright access follows at once. A failure here does
        // not stop the sign-in; the ten-minute pass brings them in line.
        if let Err(e) = self.apply_rules_for(user).await {
            tracing::error!(user = user.0, error = ?e, "automatic assignment after sign-in failed");
        }
        Ok(user)
    }

    /// Whether `user` is now linked to this very identity: a sign-in of the same person (another
    /// tab) committed since this one looked the identity up.
    async fn is_identity_of(&self, tx: &mut Tx, identity: &ProviderIdentity, user: UserId) -> DomainResult<bool> {
        let mine = directory::user_by_identity(tx, &identity.issuer, &identity.subject).await?;
        Ok(mine.is_some_and(|m| m.id == user))
    }

    async fn sign_in_once(&self, identity: &ProviderIdentity, admins: &AdminBootstrap) -> DomainResult<UserId> {
        use crate::domain::audit::AuditEvent;
        use crate::domain::model::{Role, UserKind};
        use crate::store::directory::{NewUser, ProfileUpdate};
        use serde_json::json;

        let conflict = |e: sqlx::Error| {
            if crate::store::is_unique_violation(&e) {
                DomainError::Conflict(EMAIL_TAKEN.into())
            } else {
                DomainError::from(e)
            }
        };
        let now = crate::store::to_ms(self.now());
        let mut tx = self.db.begin().await?;
        let domain = email_domain(&identity.email);
        let mut guest_org = None;
        for candidate in domain_and_parents(&domain) {
            if let Some(org) = directory::configured_org_by_domain(&mut tx, candidate).await? {
                guest_org = Some(org);
                break;
            }
        }
        let refuse = async |tx: crate::store::Tx, r: Refusal| -> DomainResult<UserId> {
            tracing::warn!(
                issuer = %crate::auth::sanitize_for_log(&identity.issuer),
                email = %crate::auth::sanitize_for_log(&identity.email),
                why = r.why,
                "sign-in refused"
            );
            if let Some(user) = r.user {
                let event = AuditEvent::new(None, r.action, "user", user.0)
                    .after(json!({"issuer": identity.issuer, "subject": identity.subject, "email": identity.email}))
                    .reason(r.why);
                self.commit(tx, vec![event]).await?;
            }
            Err(DomainError::forbidden(format!("{}. Ask your administrator if you need access", r.why)))
        };
        // The account this email names is linked to another sign-in: a conflict, on its record.
        let already_linked = async |tx: crate::store::Tx, user: UserId, reason: &'static str| -> DomainResult<UserId> {
            let event = AuditEvent::new(None, "user.link_refused", "user", user.0)
                .after(json!({"issuer": identity.issuer, "subject": identity.subject, "email": identity.email}))
                .reason(reason);
            self.commit(tx, vec![event]).await?;
            Err(DomainError::Conflict("this email address is already linked to another sign-in".into()))
        };
        // Someone known keeps how they arrived: a guest stays a guest of an organisation that
        // is still connected; a member is held to the gate. Their row is locked first, as
        // disabling locks it, so a disabling under way is seen.
        let known = directory::user_by_identity(&mut tx, &identity.issuer, &identity.subject).await?;
        self.checkpoint("sign_in.identity_read").await;
        let known = match known {
            Some(u) => {
                self.db.lock_user(&mut tx, u.id).await?;
                directory::user(&mut tx, u.id).await?
            }
            None => None,
        };
        // An email the provider does not vouch for identifies nobody: refused, on the record of
        // the known person or of the never-linked account it would have been linked to.
        if !identity.email_verified && !admins.trust_provider_emails {
            const UNVERIFIED: &str = "the identity provider did not verify your email address";
            let (user, action) = match &known {
                Some(u) => (Some(u.id), "user.sign_in_refused"),
                None => match directory::user_by_email(&mut tx, &identity.email).await? {
                    Some((u, None)) => (Some(u.id), "user.link_refused"),
                    _ => (None, "user.sign_in_refused"),
                },
            };
            return refuse(tx, Refusal { user, action, why: UNVERIFIED }).await;
        }
        let gate = |kind: Option<(UserKind, Option<crate::domain::ids::OrgId>)>| match kind {
            Some((UserKind::Guest, org)) => match (org, guest_org) {
                (Some(org), Some(now_org)) if org == now_org => Ok(Arrival::Guest(org)),
                _ => Err("your organisation is not connected to this portal (any more)"),
            },
            Some((UserKind::Member, _)) => admins.member_gate(identity).map(|()| Arrival::Member),
            None => match guest_org {
                Some(org) => Ok(Arrival::Guest(org)),
                None => admins.member_gate(identity).map(|()| Arrival::Member),
            },
        };
        let mut arrival = match gate(known.as_ref().map(|u| (u.kind, u.connected_org_id))) {
            Ok(a) => a,
            Err(why) => {
                return refuse(tx, Refusal { user: known.map(|u| u.id), action: "user.sign_in_refused", why }).await
            }
        };
        // Not known by identity: an account made before (SCIM, import, demo) is linked on first
        // sign-in by email — past the gate, on an allowed domain, and only if never linked.
        let mut linking = false;
        let existing = match known {
            Some(u) => Some(u),
            None => match directory::user_by_email(&mut tx, &identity.email).await? {
                Some((u, None)) => {
                    if let Err(why) = admins.may_link(identity) {
                        return refuse(tx, Refusal { user: Some(u.id), action: "user.link_refused", why }).await;
                    }
                    self.db.lock_user(&mut tx, u.id).await?;
                    // Read again under the lock every linker takes: another sign-in with the
                    // same email may have linked the account meanwhile.
                    let u = match directory::user_by_email(&mut tx, &identity.email).await? {
                        Some((again, None)) if again.id == u.id => again,
                        _ if self.is_identity_of(&mut tx, identity, u.id).await? => {
                            return Err(DomainError::Conflict(EMAIL_TAKEN.into()));
                        }
                        _ => {
                            return already_linked(tx, u.id, "the account was linked to another sign-in meanwhile")
                                .await
                        }
                    };
                    // The account keeps its kind: a guest account links only for its own
                    // organisation, and a member account arrives as a member.
                    match gate(Some((u.kind, u.connected_org_id))) {
                        Ok(a) => arrival = a,
                        Err(why) => {
                            return refuse(tx, Refusal { user: Some(u.id), action: "user.link_refused", why }).await
                        }
                    }
                    linking = true;
                    Some(u)
                }
                Some((u, Some(_))) => {
                    // This very identity, committed since it was looked up: the same person
                    // signing in from another tab got there first. Try again as them.
                    if self.is_identity_of(&mut tx, identity, u.id).await? {
                        return Err(DomainError::Conflict(EMAIL_TAKEN.into()));
                    }
                    return already_linked(tx, u.id, "the account is already linked to another sign-in").await;
                }
                None => None,
            },
        };
        // The manager is applied only when the claim names an active member we know; an
        // unknown manager is reported and the stored one kept, never silently cleared.
        let mut manager_unknown = None;
        let manager = match &identity.manager_email {
            Some(email) => match directory::user_by_email(&mut tx, email.trim()).await? {
                Some((m, _)) if m.is_active() && m.kind == UserKind::Member => Some(Some(m.id)),
                _ => {
                    manager_unknown = Some(email.trim().to_lowercase());
                    None
                }
            },
            None => None,
        };
        let display_name =
            if identity.display_name.is_empty() { identity.email.clone() } else { identity.display_name.clone() };
        // A zone the tz database does not know is ignored (the stored one stays).
        let time_zone = identity.time_zone.as_deref().and_then(crate::domain::clock::zone).map(|z| z.name().to_owned());
        let mut events = Vec::new();
        let user = match &existing {
            Some(u) if !u.is_active() => {
                return Err(DomainError::forbidden("your account is disabled; ask your administrator"));
            }
            Some(u) if u.kind == UserKind::Guest && crate::store::guests::blocked(&mut tx, u.id).await? => {
                let why = "your access here has ended, so you can no longer sign in: ask your sponsor to request \
                           access for you again";
                return refuse(tx, Refusal { user: Some(u.id), action: "user.sign_in_refused", why }).await;
            }
            Some(u) => {
                if linking {
                    events.push(
                        AuditEvent::new(Some(u.id), "user.linked", "user", u.id.0)
                            .after(json!({"issuer": identity.issuer, "subject": identity.subject, "by": "email"})),
                    );
                }
                // Every profile change the provider brings is recorded, field by field.
                let mut before = serde_json::Map::new();
                let mut after = serde_json::Map::new();
                let mut changed = |field: &str, old: serde_json::Value, new: serde_json::Value| {
                    if old != new {
                        before.insert(field.to_owned(), old);
                        after.insert(field.to_owned(), new);
                    }
                };
                changed("email", json!(u.email), json!(identity.email));
                changed("name", json!(u.display_name), json!(display_name));
                if let Some(d) = &identity.department {
                    changed("department", json!(u.department), json!(d));
                }
                if let Some(t) = &identity.job_title {
                    changed("job_title", json!(u.job_title), json!(t));
                }
                if let Some(m) = manager {
                    changed("manager", json!(u.manager_id), json!(m));
                }
                if let Some(z) = &time_zone {
                    changed("time_zone", json!(u.provider_time_zone), json!(z));
                }
                if !after.is_empty() {
                    events.push(
                        AuditEvent::new(Some(u.id), "user.profile_updated", "user", u.id.0)
                            .before(serde_json::Value::Object(before))
                            .after(serde_json::Value::Object(after))
                            .reason("from the identity provider at sign-in"),
                    );
                }
                u.id
            }
            None => {
                let id = directory::insert_user(
                    &mut tx,
                    &NewUser {
                        email: &identity.email,
                        display_name: &display_name,
                        department: identity.department.as_deref().unwrap_or(""),
                        job_title: identity.job_title.as_deref().unwrap_or(""),
                        manager_id: manager.flatten(),
                        kind: match arrival {
                            Arrival::Member => UserKind::Member,
                            Arrival::Guest(_) => UserKind::Guest,
                        },
                        connected_org_id: match arrival {
                            Arrival::Member => None,
                            Arrival::Guest(org) => Some(org),
                        },
                    },
                    now,
                )
                .await
                .map_err(conflict)?;
                events.push(AuditEvent::new(Some(id), "user.created", "user", id.0).after(json!({
                    "email": identity.email, "name": display_name, "issuer": identity.issuer, "source": "oidc",
                    "kind": if arrival == Arrival::Member { "member" } else { "guest" },
                })));
                id
            }
        };
        directory::update_profile(
            &mut tx,
            user,
            &identity.issuer,
            &identity.subject,
            &ProfileUpdate {
                email: &identity.email,
                display_name: &display_name,
                department: identity.department.as_deref(),
                job_title: identity.job_title.as_deref(),
                manager_id: manager,
                time_zone: time_zone.as_deref(),
            },
            now,
        )
        .await
        .map_err(conflict)?;
        if let Some(email) = manager_unknown {
            tracing::warn!(user = user.0, manager = %crate::auth::sanitize_for_log(&email), "the manager the provider names is not known here");
            events.push(
                AuditEvent::new(None, "user.manager_unknown", "user", user.0)
                    .after(json!({"manager_email": email}))
                    .reason(
                        "the provider named a manager who is not an active member here; the stored manager is kept",
                    ),
            );
        }
        if let Some(names) = &identity.groups {
            let mut ids = Vec::new();
            let mut ignored = Vec::new();
            // In one order, once each: two first sign-ins creating the same new groups must
            // not wait on each other's inserts in opposite orders (a deadlock on PostgreSQL).
            let mut sorted: Vec<&str> = names.iter().map(|n| n.trim()).collect();
            sorted.sort_unstable();
            sorted.dedup();
            for name in sorted {
                // A provider group never joins a group kept here (or fed by another source).
                match directory::ensure_group(&mut tx, name, "oidc", now).await? {
                    Some(id) => ids.push(id),
                    None => ignored.push(name.to_owned()),
                }
            }
            let (added, removed) = directory::set_sourced_memberships(&mut tx, user, "oidc", &ids).await?;
            if added + removed > 0 || !ignored.is_empty() {
                events.push(AuditEvent::new(Some(user), "user.groups_synced", "user", user.0).after(json!({
                    "groups": names, "added": added, "removed": removed, "ignored_not_provider_groups": ignored,
                })));
            }
        }
        // Administrator bootstrap, members only: by the group claim while the person is in the
        // group (revoked when they leave it, or when no group is configured any more), or by
        // the email list, once.
        let member = arrival == Arrival::Member;
        let in_group =
            member && admins.group.as_ref().is_some_and(|g| identity.groups.as_ref().is_some_and(|gs| gs.contains(g)));
        let by_email = member && admins.admits_email(identity) && !directory::was_bootstrapped(&mut tx, user).await?;
        let is_admin = directory::has_global_role(&mut tx, user, Role::Administrator).await?;
        let left_group = match &admins.group {
            Some(_) => identity.groups.is_some() && !in_group,
            None => true,
        };
        if !is_admin && (in_group || by_email) {
            let source = if in_group { "bootstrap_group" } else { "bootstrap_email" };
            directory::bootstrap_admin(&mut tx, user, source, now).await?;
            events.push(
                AuditEvent::new(None, "role.granted", "user", user.0)
                    .after(json!({"role": "administrator", "catalog": null, "source": source}))
                    .reason("administrator bootstrap by configuration"),
            );
        } else if is_admin && (left_group || !member) && directory::revoke_group_bootstrap(&mut tx, user).await? {
            events.push(
                AuditEvent::new(None, "role.revoked", "user", user.0)
                    .before(json!({"role": "administrator", "catalog": null, "source": "bootstrap_group"}))
                    .reason("no longer in the administrators' group at the identity provider"),
            );
        }
        self.commit(tx, events).await?;
        Ok(user)
    }
}

impl super::capability::Administrator<'_> {
    /// Disable or re-enable a person (administrators). A disabled person's sessions stop
    /// working at their next request, and they lose what they hold (see `leavers.rs`).
    #[tracing::instrument(name = "set_user_active", skip_all, fields(actor = self.actor.id().0, user = user.0, active = active))]
    pub async fn set_user_active(&self, user: UserId, active: bool) -> DomainResult<()> {
        if user == self.actor.id() && !active {
            return Err(DomainError::invalid("user", "you cannot disable yourself"));
        }
        self.service.set_active(Some(self.actor.id()), user, active).await.map(|_| ())
    }
}

impl Service {
    /// Disable or re-enable a person, as `actor` (`None`: the operator at the command line):
    /// what leaving took away, when it disabled them; `None` when nothing changed.
    pub(super) async fn set_active(
        &self,
        actor: Option<UserId>,
        user: UserId,
        active: bool,
    ) -> DomainResult<Option<super::Offboarded>> {
        let mut tx = self.db.begin().await?;
        self.db.lock_user(&mut tx, user).await?;
        let mut events = Vec::new();
        let gone = self.set_active_in(&mut tx, actor, user, active, &mut events).await?;
        if gone.is_some() {
            self.commit(tx, events).await?;
        }
        Ok(gone)
    }

    /// [`Self::set_active`] inside the caller's transaction, the person locked already; its
    /// audit events are added to `events`. `None` when they already were so.
    pub(super) async fn set_active_in(
        &self,
        tx: &mut crate::store::Tx,
        actor: Option<UserId>,
        user: UserId,
        active: bool,
        events: &mut Vec<crate::domain::audit::AuditEvent>,
    ) -> DomainResult<Option<super::Offboarded>> {
        use crate::domain::audit::AuditEvent;
        use crate::domain::model::UserState;
        let now = self.now();
        let before = directory::user(tx, user).await?.ok_or_else(|| DomainError::not_found("person"))?;
        let state = if active { UserState::Active } else { UserState::Disabled };
        if before.state == state {
            return Ok(None);
        }
        if !directory::set_state(tx, user, state, crate::store::to_ms(now)).await? {
            return Err(DomainError::not_found("person"));
        }
        events.push(
            AuditEvent::new(actor, if active { "user.enabled" } else { "user.disabled" }, "user", user.0)
                .before(serde_json::json!({"state": before.state.as_str()}))
                .after(serde_json::json!({"state": state.as_str()})),
        );
        if !active {
            let gone = self.offboard(tx, user, actor, now, events).await?;
            tracing::info!(user = user.0, ?gone, "leaver offboarded");
            Ok(Some(gone))
        } else {
            // Let back in: not blocked, and a guest's days without access count from now.
            crate::store::guests::restart(tx, user, now).await?;
            Ok(Some(super::Offboarded::default()))
        }
    }
}
