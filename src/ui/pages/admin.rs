//! The admin area (`/admin`).

use leptos::prelude::*;
use leptos_meta::Title;

use crate::ui::api::*;
use crate::ui::components::*;
use crate::ui::error::AppError;
use crate::ui::use_viewer;

#[component]
pub fn Admin() -> impl IntoView {
    view! {
        <Title text="Admin" />
        <SignedIn>
            <AdminBody />
        </SignedIn>
    }
}

/// Made by [`SignedIn`] once the viewer is known, so the viewer is read once, untracked: in a
/// closure, the server would make the sections (and run their resources) once per walk of the
/// boundary around them.
#[component]
fn AdminBody() -> impl IntoView {
    match use_viewer().get_untracked().and_then(Result::ok).flatten() {
        Some(v) if v.admin_area => view! {
            <h1>"Admin"</h1>
            <p class="lead">{format!("Signed in as {}{}.", v.name, if v.is_admin { ", administrator" } else { "" })}</p>
            <p class="tags">
                {v.is_admin.then(|| view! { <a class="btn-secondary" href="/admin/audit">"Audit log"</a> })}
                <a class="btn-secondary" href="/admin/people">"People"</a>
                <a class="btn-secondary" href="/admin/reviews">"Access reviews"</a>
                {v.is_admin.then(|| view! { <a class="btn-secondary" href="/admin/orgs">"Connected organizations"</a> })}
                {v.is_admin.then(|| view! { <a class="btn-secondary" href="/admin/connectors">"Connected systems"</a> })}
                {v.is_admin.then(|| view! { <a class="btn-secondary" href="/admin/service-accounts">"Service accounts"</a> })}
                <a class="btn-secondary" href="/api/v1/docs/" rel="external">"REST API"</a>
            </p>
            <FailedWork />
            <ManagedCatalogs />
            {v.is_admin.then(|| view! { <BuiltinGroups /> })}
        }
        .into_any(),
        _ => view! { <ErrorPanel error=AppError::Forbidden("the admin area is for administrators and catalog managers".into()) /> }
            .into_any(),
    }
}

/// The catalogs the viewer manages, each linking to its admin page.
#[component]
fn ManagedCatalogs() -> impl IntoView {
    let catalogs = Resource::new(|| (), |_| admin_catalogs());
    view! {
        <section class="panel" aria-labelledby="admin-catalogs-h">
            <h2 id="admin-catalogs-h">"Catalogs"</h2>
            <Suspense fallback=|| ()>
                {loaded(catalogs, move |r| match r {
                    Ok(list) => view! {
                        <ul class="plain" id="admin-catalogs">
                            {list.items.into_iter().map(|c| view! { <li><a href=format!("/admin/catalogs/{}", c.id)>{c.name}</a></li> }).collect_view()}
                        </ul>
                        <p><a class="btn-secondary" href="/admin/catalogs">{if list.may_create { "All catalogs, or a new one" } else { "All catalogs" }}</a></p>
                    }.into_any(),
                    Err(e) => view! { <ErrorPanel error=e /> }.into_any(),
                })}
            </Suspense>
        </section>
    }
}

/// Provisioning work that failed after its last attempt, additions and removals alike, each
/// with a Retry button (a plain form without JavaScript).
#[component]
fn FailedWork() -> impl IntoView {
    let retry = ServerAction::<RetryDelivery>::new();
    let work = Resource::new(move || retry.version().get(), |_| failed_work());
    view! {
        <section class="panel" aria-labelledby="failed-h">
            <h2 id="failed-h">"Failed provisioning"</h2>
            <p class="muted small">"Work the delivery worker gave up on after its last attempt. Fix the cause, then retry."</p>
            <Notices latest=retry.value() flash=flash() />
            <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {loaded(work, move |r| match r {
                    Ok(list) if list.is_empty() => view! { <p class="empty">"Nothing has failed."</p> }.into_any(),
                    Ok(list) => view! {
                        <table class="table" id="failed-work">
                            <thead><tr><th>"Person"</th><th>"Resource · role"</th><th>"Change"</th><th>"Attempts"</th><th>"Last error"</th><th><span class="sr-only">"Actions"</span></th></tr></thead>
                            <tbody>
                                {list.into_iter().map(|f| {
                                    let change = if f.kind == "remove_member" { "Remove" } else { "Add" };
                                    let what = if f.role.is_empty() { f.resource.clone() } else { format!("{} · {}", f.resource, f.role) };
                                    view! {
                                        <tr id=format!("failed-{}", f.outbox_id)>
                                            <td>{f.person}</td>
                                            <td>{what}</td>
                                            <td><span class=format!("state state-{}", f.kind)>{change}</span></td>
                                            <td>{f.attempts}</td>
                                            <td class="error-text">{f.error}</td>
                                            <td class="row-actions">
                                                <ActionForm action=retry attr:class="inline">
                                                    <input type="hidden" name="outbox_id" value=f.outbox_id />
                                                    <button type="submit" class="btn-secondary">"Retry"</button>
                                                </ActionForm>
                                            </td>
                                        </tr>
                                    }
                                }).collect_view()}
                            </tbody>
                        </table>
                    }.into_any(),
                    Err(e) => view! { <ErrorPanel error=e /> }.into_any(),
                })}
            </Suspense>
        </section>
    }
}

#[component]
fn BuiltinGroups() -> impl IntoView {
    let groups = Resource::new(|| (), |_| builtin_groups());
    view! {
        <section class="panel" aria-labelledby="builtin-h">
            <h2 id="builtin-h">"Built-in groups"</h2>
            <p class="muted small">"Groups held by Quartermaster itself: what delivery has granted, right now."</p>
            <Suspense fallback=|| ()>
                {loaded(groups, move |r| match r {
                    Ok(list) => view! {
                        <table class="table" id="builtin-groups">
                            <thead><tr><th>"Resource"</th><th>"Role"</th><th>"Members"</th></tr></thead>
                            <tbody>
                                {list.into_iter().map(|g| view! {
                                    <tr>
                                        <td>{g.resource}</td>
                                        <td>{g.role}</td>
                                        <td>{if g.members.is_empty() { "—".to_owned() } else { g.members.join(", ") }}</td>
                                    </tr>
                                }).collect_view()}
                            </tbody>
                        </table>
                    }.into_any(),
                    Err(e) => view! { <ErrorPanel error=e /> }.into_any(),
                })}
            </Suspense>
        </section>
    }
}
