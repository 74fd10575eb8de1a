//! A bulk assignment's progress (`/admin/bulk/:job`): how many rows are done, and each row's
//! outcome — assigned, or skipped and why. While it runs the page reloads itself every few
//! seconds (a plain refresh: the same with JavaScript and without), unless asked not to.

use leptos::prelude::*;
use leptos_meta::{Meta, Title};
use leptos_router::hooks::{use_params_map, use_query_map};

use crate::ui::api::*;
use crate::ui::components::*;
use crate::views::*;

#[component]
pub fn BulkJob() -> impl IntoView {
    view! {
        <SignedIn>
            <BulkBody />
        </SignedIn>
    }
}

#[component]
fn BulkBody() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.read().get("job").and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
    let paused = use_query_map().read_untracked().get("paused").is_some();
    let job = Resource::new(id, load_bulk_job);
    view! {
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {loaded(job, move |r| match r {
                Ok(j) => view! { <Progress j paused /> }.into_any(),
                Err(e) => view! { <ErrorPanel error=e /> }.into_any(),
            })}
        </Suspense>
    }
}

#[component]
fn Progress(j: BulkJobView, paused: bool) -> impl IntoView {
    let done = j.assigned + j.skipped + j.failed;
    let total = j.total;
    let here = format!("/admin/bulk/{}", j.id);
    let skipped: Vec<BulkRowView> =
        j.rows.iter().filter(|r| matches!(r.outcome.as_deref(), Some("skipped" | "failed"))).cloned().collect();
    view! {
        <Title text=format!("Bulk assignment · {}", j.package) />
        {(j.running && !paused).then(|| view! { <Meta http_equiv="refresh" content="3" /> })}
        <p class="crumbs">
            <a href="/admin">"Admin"</a>" / "<a href=format!("/admin/packages/{}", j.package_id)>{j.package.clone()}</a>
        </p>
        <h1>"Bulk assignment"</h1>
        <section class="panel" aria-labelledby="progress-h" id="bulk-progress">
            <h2 id="progress-h">{if j.running { "Assigning…" } else { "Done" }}</h2>
            <progress max=total value=done aria-label="Rows done">{format!("{done} of {total}")}</progress>
            <p id="bulk-summary" aria-live="polite">
                {format!("{done} of {total} rows: {} assigned, {} skipped.", j.assigned, j.skipped)}
                {(j.failed > 0).then(|| format!(" {} could not be assigned because of an error on our side: try them again.", j.failed))}
            </p>
            {j.running.then(|| if paused {
                view! { <p><a href=here.clone() rel="external">"Refresh, and keep refreshing"</a></p> }.into_any()
            } else {
                view! { <p class="small">"This page refreshes every few seconds until every row is done. "<a href=format!("{here}?paused=1") rel="external">"Stop refreshing"</a></p> }.into_any()
            })}
            <p class="muted small">"Each row is its own assignment, audited on its own: a skipped row changes nothing."</p>
        </section>
        {(!skipped.is_empty()).then(|| view! {
            <section class="panel" aria-labelledby="skipped-h">
                <h2 id="skipped-h">"Skipped, and why"</h2>
                <table class="table" id="bulk-skipped">
                    <thead><tr><th>"Line"</th><th>"Person"</th><th>"Why"</th></tr></thead>
                    <tbody>
                        {skipped.into_iter().map(|r| view! { <tr><td>{r.line}</td><td>{r.person}</td><td>{r.why}</td></tr> }).collect_view()}
                    </tbody>
                </table>
            </section>
        })}
        {(!j.running).then(|| view! {
        <section class="panel" aria-labelledby="rows-h">
            <h2 id="rows-h">"Every row"</h2>
            <table class="table" id="bulk-rows">
                <thead><tr><th>"Line"</th><th>"Person"</th><th>"Outcome"</th></tr></thead>
                <tbody>
                    {j.rows.into_iter().map(|r| {
                        let outcome = match r.outcome.as_deref() {
                            Some("assigned") => "Assigned: access is being granted".to_owned(),
                            Some("failed") => format!("Not assigned: {}", r.why),
                            Some(_) => format!("Skipped: {}", r.why),
                            None => "Waiting".to_owned(),
                        };
                        view! { <tr><td>{r.line}</td><td>{r.person}</td><td>{outcome}</td></tr> }
                    }).collect_view()}
                </tbody>
            </table>
        </section>
        })}
        <p><a href=format!("/admin/packages/{}", j.package_id)>"Back to the package"</a></p>
    }
}
