//! A bulk assignment's progress (`/admin/bulk/:job`): how many rows are done, and each row's
//! outcome — assigned, or skipped and why. While it runs the page reloads itself every two
//! seconds (a plain refresh: the same with JavaScript and without).

use leptos::prelude::*;
use leptos_meta::{Meta, Title};
use leptos_router::hooks::use_params_map;

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
    let job = Resource::new(id, load_bulk_job);
    view! {
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || job.get().map(|r| match r {
                Ok(j) => view! { <Progress j /> }.into_any(),
                Err(e) => view! { <ErrorPanel error=e /> }.into_any(),
            })}
        </Suspense>
    }
}

#[component]
fn Progress(j: BulkJobView) -> impl IntoView {
    let done = j.assigned + j.skipped;
    let total = usize::try_from(j.total).unwrap_or(0);
    let skipped: Vec<BulkRowView> =
        j.rows.iter().filter(|r| r.outcome.as_deref() == Some("skipped")).cloned().collect();
    view! {
        <Title text=format!("Bulk assignment · {}", j.package) />
        {j.running.then(|| view! { <Meta http_equiv="refresh" content="2" /> })}
        <p class="crumbs">
            <a href="/admin">"Admin"</a>" / "<a href=format!("/admin/packages/{}", j.package_id)>{j.package.clone()}</a>
        </p>
        <h1>"Bulk assignment"</h1>
        <section class="panel" aria-labelledby="progress-h" id="bulk-progress">
            <h2 id="progress-h">{if j.running { "Assigning…" } else { "Done" }}</h2>
            <progress max=total value=done aria-label="Rows done">{format!("{done} of {total}")}</progress>
            <p id="bulk-summary">
                {format!("{done} of {total} rows: {} assigned, {} skipped.", j.assigned, j.skipped)}
                {j.running.then_some(" This page refreshes until every row is done.")}
            </p>
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
        <section class="panel" aria-labelledby="rows-h">
            <h2 id="rows-h">"Every row"</h2>
            <table class="table" id="bulk-rows">
                <thead><tr><th>"Line"</th><th>"Person"</th><th>"Outcome"</th></tr></thead>
                <tbody>
                    {j.rows.into_iter().map(|r| {
                        let outcome = match r.outcome.as_deref() {
                            Some("assigned") => "Assigned".to_owned(),
                            Some(_) => format!("Skipped: {}", r.why),
                            None => "Waiting".to_owned(),
                        };
                        view! { <tr><td>{r.line}</td><td>{r.person}</td><td>{outcome}</td></tr> }
                    }).collect_view()}
                </tbody>
            </table>
        </section>
        <p><a href=format!("/admin/packages/{}", j.package_id)>"Back to the package"</a></p>
    }
}
