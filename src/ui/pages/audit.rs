//! The audit log (`/admin/audit`): every change, newest first, narrowed by who, what kind of
//! object, which object, action and days; a page at a time, and all of it as CSV.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::Form;
use leptos_router::hooks::use_query_map;

use crate::ui::api::*;
use crate::ui::components::*;
use crate::views::*;

#[component]
pub fn AuditLog() -> impl IntoView {
    view! {
        <Title text="Audit log" />
        <SignedIn>
            <AuditBody />
        </SignedIn>
    }
}

/// The filter as a query string (`who=…&object_type=…`), for the next page and the export.
fn filter_query(f: &AuditFilter) -> String {
    f.fields()
        .iter()
        .filter(|(_, v)| !v.trim().is_empty())
        .map(|(k, v)| format!("{k}={}", urlencode(v.trim())))
        .collect::<Vec<_>>()
        .join("&")
}

#[component]
fn AuditBody() -> impl IntoView {
    let query = use_query_map();
    let field = move |k: &str| query.read().get(k).unwrap_or_default();
    let filter = move || AuditFilter {
        who: field("who"),
        object_type: field("object_type"),
        object_id: field("object_id"),
        action: field("action"),
        from: field("from"),
        to: field("to"),
    };
    let before = move || query.read().get("before");
    let events = Resource::new(move || (filter(), before()), |(f, b)| audit_log(f, b));
    let input = move |id: &'static str, label: &'static str, kind: &'static str, hint: &'static str| {
        view! {
            <label class="field">
                <span>{label}</span>
                <input id=id name=id type=kind placeholder=hint prop:value=move || field(id) />
            </label>
        }
    };
    view! {
        <h1>"Audit log"</h1>
        <p class="muted">"Every change, with who made it and the values before and after. Newest first."</p>
        <ChainPanel />
        <section class="panel" aria-labelledby="filter-h">
            <h2 id="filter-h" class="sr-only">"Filter"</h2>
            <Form method="GET" action="/admin/audit" attr:class="filters" attr:role="search">
                {input("who", "Who", "text", "email or person id")}
                {input("object_type", "Object type", "text", "request, assignment, package…")}
                {input("object_id", "Object id", "text", "")}
                {input("action", "Action", "text", "request.approved")}
                {input("from", "From", "date", "")}
                {input("to", "To", "date", "")}
                <button type="submit" class="btn">"Filter"</button>
                <a class="btn-secondary" href="/admin/audit">"Clear"</a>
            </Form>
        </section>
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {loaded(events, move |r| match r {
                Ok(page) => {
                    let q = filter_query(&filter());
                    let export = format!("/admin/audit.csv?{q}");
                    let next = page.next.clone().map(|n| {
                        let sep = if q.is_empty() { "" } else { "&" };
                        format!("/admin/audit?{q}{sep}before={n}")
                    });
                    view! {
                        <p><a class="btn-secondary" href=export download="audit-log.csv">"Export as CSV"</a></p>
                        {if page.items.is_empty() {
                            view! { <p class="empty">"No events match this filter."</p> }.into_any()
                        } else {
                            view! { <AuditTable events=page.items /> }.into_any()
                        }}
                        {next.map(|href| view! { <p><a class="btn-secondary" href=href>"Older events →"</a></p> })}
                    }.into_any()
                }
                Err(e) => view! { <ListError error=e /> }.into_any(),
            })}
        </Suspense>
    }
}

/// The chain's integrity: what the latest walk found, and a button to walk it now (the whole
/// chain, checked against the head the last intact walk recorded).
#[component]
fn ChainPanel() -> impl IntoView {
    let verify = ServerAction::<VerifyAuditChain>::new();
    let status = Resource::new(move || verify.version().get(), |_| audit_chain_status());
    view! {
        <section class="panel" aria-labelledby="chain-h" id="chain-status">
            <h2 id="chain-h">"Integrity"</h2>
            <Notices latest=verify.value() flash=flash() />
            <Suspense fallback=|| ()>
                {loaded(status, move |r| match r {
                    Ok(Some(s)) if s.intact => view! {
                        <p class="notice ok">
                            {format!("Intact: {} events", s.events)}
                            {s.head_id.map(|id| format!(", through event {id}"))}
                            ". Verified " <Time ms=s.at /> {format!(" by {}.", s.by)}
                        </p>
                    }.into_any(),
                    Ok(Some(s)) => view! {
                        <p class="notice err" role="alert">
                            {format!("Broken at event {}: {}. ", s.broken_event_id.unwrap_or(0), s.why)}
                            "Found " <Time ms=s.at /> {format!(" by {}.", s.by)}
                        </p>
                    }.into_any(),
                    Ok(None) => view! { <p class="muted">"The chain has not been verified yet."</p> }.into_any(),
                    Err(e) => view! { <ErrorPanel error=e /> }.into_any(),
                })}
            </Suspense>
            <ActionForm action=verify attr:class="inline" attr:id="verify-chain">
                <button type="submit" class="btn-secondary">"Verify the chain now"</button>
            </ActionForm>
            <p class="muted small">"Each event's hash covers the one before it: an edited, removed or reordered event breaks the chain from there on. The head of the last intact walk is checked too, so a cut tail is found."</p>
        </section>
    }
}

#[component]
fn AuditTable(events: Vec<AuditEventView>) -> impl IntoView {
    view! {
        <table class="table" id="audit-log">
            <thead><tr><th>"When"</th><th>"Who"</th><th>"Action"</th><th>"Object"</th><th>"Details"</th></tr></thead>
            <tbody>
                {events.into_iter().map(|e| {
                    let who = match e.actor_id {
                        Some(id) => view! { <a href=format!("/admin/audit?who={id}")>{e.actor.clone()}</a> }.into_any(),
                        None => view! { <span class="muted">{e.actor.clone()}</span> }.into_any(),
                    };
                    let object = format!("/admin/audit?object_type={}&object_id={}", urlencode(&e.object_type), e.object_id);
                    view! {
                        <tr id=format!("event-{}", e.id)>
                            <td><Time ms=e.at /></td>
                            <td>
                                {who}
                                {e.token.map(|t| view! { <span class="muted">" via API token " {t}</span> })}
                            </td>
                            <td><code>{e.action.clone()}</code></td>
                            <td><a href=object>{format!("{} {}", e.object_type, e.object_id)}</a></td>
                            <td>
                                {(!e.reason.is_empty()).then(|| view! { <p>{e.reason.clone()}</p> })}
                                <details>
                                    <summary>"Before and after"</summary>
                                    <pre class="json">{e.before.clone()}</pre>
                                    <pre class="json">{e.after.clone()}</pre>
                                </details>
                            </td>
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
    }
}
