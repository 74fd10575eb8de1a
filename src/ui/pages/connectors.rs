//! Connected systems (`/admin/connectors`, administrators): each SCIM, LDAP or webhook target
//! with its address and settings, its queue, failures, last success and last error, a test of
//! the connection that shows the target's answer, and "retry failed"; and a form to add one.
//! Secrets are write-only: typed once, sealed, never shown again. Plain forms throughout.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::ui::api::*;
use crate::ui::components::*;
use crate::ui::error::AppError;
use crate::views::*;

#[component]
pub fn Connectors() -> impl IntoView {
    view! {
        <Title text="Connected systems" />
        <SignedIn>
            <ConnectorsBody />
        </SignedIn>
    }
}

#[component]
fn ConnectorsBody() -> impl IntoView {
    let add = ServerAction::<AddConnector>::new();
    let test = ServerAction::<TestConnector>::new();
    let retry = ServerAction::<RetryConnector>::new();
    let check = ServerAction::<CheckDrift>::new();
    let repair = ServerAction::<RepairDrift>::new();
    let change = ServerAction::<EditConnector>::new();
    let systems = Resource::new(
        move || {
            (
                add.version().get(),
                test.version().get(),
                retry.version().get(),
                check.version().get(),
                repair.version().get(),
                change.version().get(),
            )
        },
        |_| load_connectors(),
    );
    let latest = latest_of(vec![
        add.value().into(),
        test.value().into(),
        retry.value().into(),
        check.value().into(),
        repair.value().into(),
        change.value().into(),
    ]);
    let row_actions = RowActions { test, retry, check, repair, change };
    let added: Signal<Option<Result<Notice, AppError>>> = add.value().into();
    let flash = flash();
    view! {
        <p class="crumbs"><a href="/admin">"Admin"</a>" / Connected systems"</p>
        <h1>"Connected systems"</h1>
        <p class="lead">"Where access is provisioned outside Quartermaster: SCIM 2.0 services, LDAP directories and webhook receivers. Bind a system's groups to a catalog as resources; packages then grant them."</p>
        <Notices latest flash />
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {loaded(systems, move |r| match r {
                Ok(list) if list.is_empty() => view! { <p class="empty">"No connected system yet."</p> }.into_any(),
                Ok(list) => view! {
                    <table class="table" id="connectors">
                        <thead><tr>
                            <th>"System"</th><th>"Resources"</th><th>"Queued"</th><th>"Failed"</th>
                            <th>"Last success"</th><th>"Last error"</th><th><span class="sr-only">"Actions"</span></th>
                        </tr></thead>
                        <tbody>
                            {list.into_iter().map(|c| view! { <ConnectorRow c actions=row_actions /> }).collect_view()}
                        </tbody>
                    </table>
                }.into_any(),
                Err(e) => view! { <ErrorPanel error=e /> }.into_any(),
            })}
        </Suspense>
        <section class="panel" aria-labelledby="new-connector-h">
            <h2 id="new-connector-h">"Add a system"</h2>
            <ActionForm action=add attr:class="form" attr:id="new-connector">
                <label for="c-kind">"Kind"</label>
                <select id="c-kind" name="kind">
                    <option value="scim">"SCIM 2.0 service"</option>
                    <option value="ldap">"LDAP directory"</option>
                    <option value="webhook">"Webhook receiver"</option>
                </select>
                <FieldError latest=added flash field="kind" />
                <label for="c-name">"Name"</label>
                <input type="text" id="c-name" name="name" required maxlength="200" />
                <FieldError latest=added flash field="name" />
                <label for="c-url">"Address"</label>
                <input type="text" id="c-url" name="url" required placeholder="https://idp.example/scim/v2 · ldaps://dir.example · https://hooks.example/qm" />
                <p class="muted small">"https:// (plain http only to this machine); LDAP: ldaps://, or ldap:// with StartTLS."</p>
                <FieldError latest=added flash field="base_url" />
                <FieldError latest=added flash field="url" />
                <label for="c-secret">"Secret"</label>
                <input type="password" id="c-secret" name="secret" required autocomplete="off" />
                <p class="muted small">"SCIM: the bearer token. LDAP: the bind password. Webhook: the signing secret (16 characters or more). Sealed when saved; never shown again."</p>
                <FieldError latest=added flash field="token" />
                <FieldError latest=added flash field="password" />
                <FieldError latest=added flash field="secret" />
                <label class="check"><input type="checkbox" name="create_users" />" SCIM: create people the service does not know"</label>
                <label class="check"><input type="checkbox" name="lifecycle_events" />" Webhook: also tell it the lifecycle of requests (created, approved, delivered, removed) for packages that grant its roles"</label>
                <fieldset>
                    <legend>"LDAP only"</legend>
                    <label class="check"><input type="checkbox" name="ldap[starttls]" />" StartTLS (with ldap://)"</label>
                    <label for="c-bind">"Bind DN"</label>
                    <input type="text" id="c-bind" name="ldap[bind_dn]" placeholder="cn=quartermaster,ou=services,dc=example,dc=com" />
                    <label for="c-people">"People base (found by mail)"</label>
                    <input type="text" id="c-people" name="ldap[people_base]" placeholder="ou=people,dc=example,dc=com" />
                    <label for="c-member">"Members listed in"</label>
                    <select id="c-member" name="ldap[member_attribute]">
                        <option value="member">"member (groupOfNames)"</option>
                        <option value="uniqueMember">"uniqueMember (groupOfUniqueNames)"</option>
                    </select>
                </fieldset>
                <p><button type="submit" class="btn">"Add system"</button></p>
            </ActionForm>
        </section>
    }
}

#[derive(Clone, Copy)]
struct RowActions {
    test: ServerAction<TestConnector>,
    retry: ServerAction<RetryConnector>,
    check: ServerAction<CheckDrift>,
    repair: ServerAction<RepairDrift>,
    change: ServerAction<EditConnector>,
}

#[component]
fn ConnectorRow(c: ConnectorView, actions: RowActions) -> impl IntoView {
    let RowActions { test, retry, check, repair, change } = actions;
    let edit = (c.id, c.kind.clone(), c.name.clone(), c.address.clone(), c.editable.clone());
    let compares = matches!(c.kind.as_str(), "scim" | "ldap");
    let named = |what: &str| format!("{what}: {}", c.name);
    let (test_label, retry_label, check_label, repair_label, confirm_label) = (
        named("Test"),
        named("Retry failed"),
        named("Check drift"),
        named("Repair drift"),
        named("Repair even a mass removal"),
    );
    let kind = match c.kind.as_str() {
        "scim" => "SCIM",
        "ldap" => "LDAP",
        "webhook" => "Webhook",
        _ => "Other",
    };
    view! {
        <tr id=format!("connector-{}", c.id)>
            <td>
                <strong><a href=format!("/admin/connectors/{}", c.id)>{c.name}</a></strong>" "<span class="tag">{kind}</span>
                <div class="muted small">{c.address}</div>
                <div class="muted small">{c.settings}</div>
                {c.paused_until.map(|ms| view! { <div class="small">"Paused until "<Time ms /></div> })}
                {c.drift_checked_at.map(|ms| view! { <div class="small drift">"Drift, checked "<Time ms />": "{c.drift.clone()}</div> })}
                {
                    let (id, kind, name, address, e) = edit;
                    view! {
                        <details class="small">
                            <summary>"Change settings"</summary>
                            <ActionForm action=change attr:class="form">
                                <input type="hidden" name="system_id" value=id />
                                <EditFields id kind address e />
                                <p><button type="submit" class="btn-secondary" aria-label=format!("Save: {name}")>"Save"</button></p>
                            </ActionForm>
                        </details>
                    }
                }
            </td>
            <td>{c.resources}</td>
            <td>{c.queued}</td>
            <td>{c.failed}</td>
            <td>{match c.last_success { Some(ms) => view! { <Time ms /> }.into_any(), None => view! { "—" }.into_any() }}</td>
            <td class="error-text">
                {c.last_error_at.map(|ms| view! { <Time ms />": " })}
                {c.last_error}
            </td>
            <td class="row-actions">
                <ActionForm action=test attr:class="inline">
                    <input type="hidden" name="system_id" value=c.id />
                    <button type="submit" class="btn-secondary" aria-label=test_label>"Test"</button>
                </ActionForm>
                {(c.failed > 0).then(|| view! {
                    <ActionForm action=retry attr:class="inline">
                        <input type="hidden" name="system_id" value=c.id />
                        <button type="submit" class="btn-secondary" aria-label=retry_label>"Retry failed"</button>
                    </ActionForm>
                })}
                {compares.then(|| view! {
                    <ActionForm action=check attr:class="inline">
                        <input type="hidden" name="system_id" value=c.id />
                        <button type="submit" class="btn-secondary" aria-label=check_label>"Check drift"</button>
                    </ActionForm>
                    <ActionForm action=repair attr:class="inline">
                        <input type="hidden" name="system_id" value=c.id />
                        <label class="check small"><input type="checkbox" name="confirm" aria-label=confirm_label />" even a mass removal"</label>
                        <button type="submit" class="btn-secondary" aria-label=repair_label>"Repair drift"</button>
                    </ActionForm>
                })}
            </td>
        </tr>
    }
}

/// The fields of a system's edit form, by its kind, filled with its settings (never its
/// secret: a new one is typed, or the stored one kept).
#[component]
fn EditFields(id: i64, kind: String, address: String, e: EditableSettings) -> impl IntoView {
    let (address_label, secret_label) = match kind.as_str() {
        "scim" => ("Base URL", "New token (empty: keep it; needed with a new base URL)"),
        "ldap" => ("URL", "New bind password (empty: keep it; needed with a new URL or bind DN)"),
        _ => ("URL", "New signing secret (empty: keep it; needed with a new URL)"),
    };
    let own = match kind.as_str() {
        "scim" => view! {
            <label class="check">
                <input type="checkbox" name="create_users" checked=e.create_users />
                " Create people the service does not know"
            </label>
        }
        .into_any(),
        "ldap" => view! {
            <label class="check"><input type="checkbox" name="ldap[starttls]" checked=e.starttls />" StartTLS (with ldap://)"</label>
            <label for=format!("edit-bind-{id}")>"Bind DN"</label>
            <input type="text" id=format!("edit-bind-{id}") name="ldap[bind_dn]" value=e.bind_dn required />
            <label for=format!("edit-people-{id}")>"People base (found by mail)"</label>
            <input type="text" id=format!("edit-people-{id}") name="ldap[people_base]" value=e.people_base required />
            <p class="muted small">"Members listed in "{e.member_attribute}" (fixed when the directory was added: its groups' schema)."</p>
        }
        .into_any(),
        _ => view! {
            <label class="check">
                <input type="checkbox" name="lifecycle_events" checked=e.lifecycle_events />
                " Tell it the lifecycle of requests for packages that grant its roles"
            </label>
        }
        .into_any(),
    };
    view! {
        <label for=format!("edit-url-{id}")>{address_label}</label>
        <input type="text" id=format!("edit-url-{id}") name="url" value=address required />
        <label for=format!("edit-token-{id}")>{secret_label}</label>
        <input type="password" id=format!("edit-token-{id}") name="secret" autocomplete="off" />
        {own}
        <label for=format!("edit-calls-{id}")>"Calls at once (1–32)"</label>
        <input type="number" id=format!("edit-calls-{id}") name="max_in_flight" min="1" max="32" value=e.max_in_flight required />
    }
}
