//! One connected system (`/admin/connectors/:system`, administrators): its settings and
//! health, its queue and its failures (the oldest first, with their errors; "Retry failed"),
//! and the import of its groups into a catalog with each import's progress. While an import
//! runs the page reloads itself every few seconds (a plain refresh: the same with JavaScript
//! and without), unless asked not to.

use leptos::prelude::*;
use leptos_meta::{Meta, Title};
use leptos_router::hooks::{use_params_map, use_query_map};

use crate::ui::api::*;
use crate::ui::components::*;
use crate::ui::error::AppError;
use crate::views::*;

#[component]
pub fn ConnectorPage() -> impl IntoView {
    view! {
        <SignedIn>
            <ConnectorBody />
        </SignedIn>
    }
}

#[component]
fn ConnectorBody() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.read().get("system").and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
    let paused = use_query_map().read_untracked().get("paused").is_some();
    let import = ServerAction::<ImportGroups>::new();
    let retry = ServerAction::<RetryConnector>::new();
    let detail =
        Resource::new(move || (id(), import.version().get(), retry.version().get()), |(id, _, _)| load_connector(id));
    let latest = latest_of(vec![import.value().into(), retry.value().into()]);
    let flash = flash();
    view! {
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {loaded(detail, move |r| match r {
                Ok(d) => view! { <Detail d paused import retry latest flash /> }.into_any(),
                Err(e) => view! { <ErrorPanel error=e /> }.into_any(),
            })}
        </Suspense>
    }
}

#[component]
fn Detail(
    d: ConnectorDetail,
    paused: bool,
    import: ServerAction<ImportGroups>,
    retry: ServerAction<RetryConnector>,
    latest: Signal<Option<Result<Notice, AppError>>>,
    flash: Flash,
) -> impl IntoView {
    let c = d.system;
    let here = format!("/admin/connectors/{}", c.id);
    let running = d.imports.iter().any(|i| i.running);
    let imports_groups = matches!(c.kind.as_str(), "scim" | "ldap");
    let ldap = c.kind == "ldap";
    let (queued, failed) = (c.queued, c.failed);
    view! {
        <Title text=format!("Connected system · {}", c.name) />
        {(running && !paused).then(|| view! { <Meta http_equiv="refresh" content="3" /> })}
        <p class="crumbs"><a href="/admin">"Admin"</a>" / "<a href="/admin/connectors">"Connected systems"</a>" / "{c.name.clone()}</p>
        <h1>{c.name.clone()}</h1>
        <p class="lead">{c.address.clone()}" · "{c.settings.clone()}</p>
        <Notices latest flash />
        {view! { <dl class="facts">
            <dt>"Resources bound"</dt><dd>{c.resources}</dd>
            <dt>"Last success"</dt>
            <dd>{match c.last_success { Some(ms) => view! { <Time ms /> }.into_any(), None => view! { "—" }.into_any() }}</dd>
            <dt>"Last error"</dt>
            <dd class="error-text">{c.last_error_at.map(|ms| view! { <Time ms />": " })}{c.last_error.clone()}</dd>
            {c.paused_until.map(|ms| view! { <dt>"Paused until"</dt><dd><Time ms /></dd> })}
        </dl> }.into_any()}

        {(imports_groups && !running).then(|| view! {
            <section class="panel" aria-labelledby="import-h">
                <h2 id="import-h">"Import its groups"</h2>
                <p class="muted small">"Each group becomes a resource of the catalog with one role, its membership, for packages to grant. A group bound already (in any catalog) is counted, not bound again."</p>
                <ActionForm action=import attr:class="form" attr:id="import-groups">
                    <input type="hidden" name="system_id" value=c.id />
                    <label for="import-catalog">"Into the catalog"</label>
                    <select id="import-catalog" name="catalog_id" required>
                        <option value="" selected>"Choose a catalog"</option>
                        {d.catalogs.iter().map(|(id, name)| view! { <option value=*id>{name.clone()}</option> }).collect_view()}
                    </select>
                    <FieldError latest flash field="catalog_id" />
                    {ldap.then(|| view! {
                        <label for="import-base">"The groups under (DN)"</label>
                        <input type="text" id="import-base" name="search_base" required placeholder="ou=groups,dc=example,dc=com" />
                        <FieldError latest flash field="search_base" />
                    })}
                    <p><button type="submit" class="btn">"Import groups"</button></p>
                </ActionForm>
            </section>
        }.into_any())}

        {(!d.imports.is_empty()).then(|| view! {
            <section class="panel" aria-labelledby="imports-h" id="imports">
                <h2 id="imports-h">"Imports"</h2>
                {if running && paused {
                    view! { <p><a href=here.clone() rel="external">"Refresh, and keep refreshing"</a></p> }.into_any()
                } else if running {
                    view! { <p class="small">"This page refreshes every few seconds while an import runs (no new import starts until it is done). "<a href=format!("{here}?paused=1") rel="external">"Stop refreshing"</a></p> }.into_any()
                } else {
                    ().into_any()
                }}
                <table class="table">
                    <thead><tr><th>"Started"</th><th>"Into"</th><th>"Progress"</th><th>"Bound"</th><th>"Already bound"</th><th>"Passed over"</th><th>"State"</th></tr></thead>
                    <tbody>
                        {d.imports.into_iter().map(|i| view! { <ImportRow i /> }).collect_view()}
                    </tbody>
                </table>
            </section>
        }.into_any())}

        {view! { <section class="panel" aria-labelledby="queue-h" id="queue">
            <h2 id="queue-h">"Queue "<span class="muted">{format!("({queued})")}</span></h2>
            <Work items=d.queue total=queued empty="Nothing is waiting." />
        </section> }.into_any()}
        {view! { <section class="panel" aria-labelledby="failures-h" id="failures">
            <h2 id="failures-h">"Failures "<span class="muted">{format!("({failed})")}</span></h2>
            {(failed > 0).then(|| view! {
                <ActionForm action=retry attr:class="inline">
                    <input type="hidden" name="system_id" value=c.id />
                    <button type="submit" class="btn-secondary">"Retry failed"</button>
                </ActionForm>
            })}
            <Work items=d.failures total=failed empty="Nothing has failed." />
        </section> }.into_any()}
    }
}

#[component]
fn ImportRow(i: GroupImportView) -> impl IntoView {
    let state = if i.running {
        if i.error.is_empty() {
            "running".to_owned()
        } else {
            format!("waiting: {}", i.error)
        }
    } else if i.failed {
        format!("failed: {}", i.error)
    } else {
        "done".to_owned()
    };
    let label = format!("Groups read for {}", i.catalog);
    let (progress, count) = match i.total {
        Some(total) => {
            let total = total.max(i.done);
            let count = format!("{} of {total}", i.done);
            (view! { <progress max=total value=i.done aria-label=label>{count.clone()}</progress> }.into_any(), count)
        }
        // Not known yet (or the target does not say): an indeterminate bar.
        None => (view! { <progress aria-label=label /> }.into_any(), format!("{} of ?", i.done)),
    };
    view! {
        <tr>
            <td><Time ms=i.started /></td>
            <td>{i.catalog}{(!i.search_base.is_empty()).then(|| view! { <div class="muted small">{i.search_base.clone()}</div> })}</td>
            <td>{progress}" "{count}</td>
            <td>{i.imported}</td>
            <td>{i.already}</td>
            <td>{i.skipped}</td>
            <td class:error-text=i.failed>{state}</td>
        </tr>
    }
}

/// A queue's first entries (oldest first) and how many there are in all.
#[component]
fn Work(items: Vec<QueuedWork>, total: i64, empty: &'static str) -> impl IntoView {
    if items.is_empty() {
        return view! { <p class="empty">{empty}</p> }.into_any();
    }
    let shown = items.len();
    view! {
        <table class="table">
            <thead><tr><th>"What"</th><th>"Person"</th><th>"Resource"</th><th>"Attempts"</th><th>"Next attempt"</th><th>"Last error"</th></tr></thead>
            <tbody>
                {items.into_iter().map(|w| view! {
                    <tr>
                        <td>{w.what}</td>
                        <td>{w.person}</td>
                        <td>{w.resource}</td>
                        <td>{w.attempts}</td>
                        <td><Time ms=w.next_attempt /></td>
                        <td class="error-text">{w.last_error}</td>
                    </tr>
                }).collect_view()}
            </tbody>
        </table>
        {(i64::try_from(shown).unwrap_or(i64::MAX) < total).then(|| view! {
            <p class="muted small">{format!("The oldest {shown} of {total}.")}</p>
        })}
    }
    .into_any()
}
