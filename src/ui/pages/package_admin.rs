//! A package in the admin area (`/admin/packages/:package`): its assignments, filtered by
//! state and searched by person, newest first, a page at a time, exported as CSV; direct
//! assignment (a person picker, a policy, an optional end, a justification) and removal.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::Form;
use leptos_router::hooks::{use_params_map, use_query_map};

use crate::ui::api::*;
use crate::ui::components::*;
use crate::ui::error::AppError;
use crate::views::*;

#[component]
pub fn PackageAdmin() -> impl IntoView {
    view! {
        <SignedIn>
            <PackageAdminBody />
        </SignedIn>
    }
}

/// The state filter's choices: (word, label).
const STATES: [(&str, &str); 7] = [
    ("live", "Live"),
    ("ended", "Ended"),
    ("all", "All"),
    ("delivering", "Being delivered"),
    ("delivery_failed", "Delivery failed"),
    ("expired", "Expired"),
    ("removed", "Removed"),
];

#[component]
fn PackageAdminBody() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let id = move || params.read().get("package").and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
    let filter = move || AssignmentFilter {
        state: query.read().get("state").unwrap_or_default(),
        q: query.read().get("q").unwrap_or_default(),
    };
    let before = move || query.read().get("before");
    let assign = ServerAction::<AssignPackage>::new();
    let remove = ServerAction::<RemovePackageAssignment>::new();
    let data = Resource::new(
        move || (id(), filter(), before(), assign.version().get(), remove.version().get()),
        |(id, f, b, _, _)| load_package_assignments(id, f, b),
    );
    let start = ServerAction::<StartPackageDraft>::new();
    let latest = latest_of(vec![assign.value().into(), remove.value().into(), start.value().into()]);
    let flash = flash();
    view! {
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {loaded(data, move |r| match r {
                Ok(d) => view! { <PackageAdminView d filter=filter() assign remove start latest flash /> }.into_any(),
                Err(e) => view! { <ListError error=e /> }.into_any(),
            })}
        </Suspense>
    }
}

#[component]
fn PackageAdminView(
    d: PackageAssignments,
    filter: AssignmentFilter,
    assign: ServerAction<AssignPackage>,
    remove: ServerAction<RemovePackageAssignment>,
    start: ServerAction<StartPackageDraft>,
    latest: Signal<Option<Result<Notice, AppError>>>,
    flash: Flash,
) -> impl IntoView {
    let here = format!("/admin/packages/{}", d.package_id);
    let q = [("state", filter.state.as_str()), ("q", filter.q.as_str())]
        .iter()
        .filter(|(_, v)| !v.trim().is_empty())
        .map(|(k, v)| format!("{k}={}", urlencode(v.trim())))
        .collect::<Vec<_>>()
        .join("&");
    let export = format!("{here}/assignments.csv?{q}");
    let next = d.assignments.next.clone().map(|n| {
        let sep = if q.is_empty() { "" } else { "&" };
        format!("{here}?{q}{sep}before={n}")
    });
    let chosen = if filter.state.is_empty() { "live".to_owned() } else { filter.state.clone() };
    let package_id = d.package_id;
    let may_assign = d.may_assign;
    let bulk_policies = d.policies.clone();
    view! {
        <Title text=format!("{} · assignments", d.package) />
        <p class="crumbs">
            <a href="/admin">"Admin"</a>" / "<a href="/admin/catalogs">"Catalogs"</a>" / "
            <a href=format!("/admin/catalogs/{}", d.catalog_id)>{d.catalog.clone()}</a>
        </p>
        <h1>{d.package.clone()}</h1>
        <p class="lead"><a href=format!("/packages/{}", d.package_id)>"As requesters see it"</a></p>
        <Notices latest flash />
        {d.roles_syncing.map(|(left, stuck)| view! {
            <p class="notice" role="status">
                "This package's resource roles changed: "
                {match left {
                    0 => "the last of its holders are being brought in line".to_owned(),
                    1 => "1 of its holders is still being brought in line".to_owned(),
                    n => format!("{n} of its holders are still being brought in line"),
                }}
                " (new roles added, dropped ones taken back). "
                {(!stuck.is_empty()).then(|| format!("It is held up at one holder, tried again on every pass: {stuck}. "))}
                <a href=format!("/admin/packages/{}", d.package_id)>"Refresh"</a>
            </p>
        })}
        {d.may_build.then(|| view! { <Build catalog=d.catalog_id package=package_id policies=d.policies.clone() start /> })}
        {may_assign.then(|| view! {
            <section class="panel" aria-labelledby="assign-h">
                <h2 id="assign-h">"Assign directly"</h2>
                <ActionForm action=assign attr:class="filters" attr:id="assign-form">
                    <input type="hidden" name="package_id" value=package_id />
                    <PersonPicker name="person" label="Person" />
                    <label class="field">
                        <span>"Policy"</span>
                        <select name="policy_id">
                            {d.policies.iter().map(|p| view! { <option value=p.id>{p.name.clone()}</option> }).collect_view()}
                        </select>
                    </label>
                    <label class="field">
                        <span>"From (optional)"</span>
                        <input type="date" name="start" />
                    </label>
                    <label class="field">
                        <span>"Until (optional)"</span>
                        <input type="date" name="end" />
                    </label>
                    <label class="field">
                        <span>"Why"</span>
                        <input type="text" name="justification" placeholder="Onboarding, cover, …" />
                    </label>
                    <button type="submit" class="btn">"Assign"</button>
                </ActionForm>
                <FieldError latest flash field="person" />
                <FieldError latest flash field="end" />
                <h3>"Assign many from a file"</h3>
                <p class="muted small">"A CSV with one email per line, and optionally an end date (YYYY-MM-DD) after a comma. Each row is assigned on its own; you see which were skipped and why."</p>
                <form method="post" enctype="multipart/form-data" action=format!("/admin/packages/{package_id}/bulk") class="form" id="bulk-form">
                    <label for="bulk-file">"CSV file"</label>
                    <input type="file" id="bulk-file" name="file" accept=".csv,text/csv,text/plain" />
                    <label for="bulk-csv">"Or paste the rows"</label>
                    <textarea id="bulk-csv" name="csv" rows="3" placeholder="maya@example.com
    tom@example.com,2027-03-31"></textarea>
                    <label for="bulk-policy">"Policy"</label>
                    <select id="bulk-policy" name="policy_id">
                        {bulk_policies.iter().map(|p| view! { <option value=p.id>{p.name.clone()}</option> }).collect_view()}
                    </select>
                    <label for="bulk-justification">"Why"</label>
                    <input type="text" id="bulk-justification" name="justification" placeholder="Team onboarding" />
                    <p><button type="submit" class="btn">"Assign from file"</button></p>
                </form>
                <FieldError latest flash field="file" />
            </section>
        })}
        <section class="panel" aria-labelledby="assignments-h">
            <h2 id="assignments-h">"Assignments"</h2>
            <Form method="GET" action=here.clone() attr:class="filters" attr:role="search">
                <label class="field">
                    <span>"State"</span>
                    <select name="state">
                        {STATES.iter().map(|(word, label)| view! { <option value=*word selected=chosen == *word>{*label}</option> }).collect_view()}
                    </select>
                </label>
                <label class="field">
                    <span>"Person"</span>
                    <input type="search" name="q" value=filter.q.clone() placeholder="start of a name or email" />
                </label>
                <button type="submit" class="btn">"Filter"</button>
                <a class="btn-secondary" href=export download="assignments.csv">"Export as CSV"</a>
            </Form>
            {if d.assignments.items.is_empty() {
                view! { <p class="empty">"No assignment matches."</p> }.into_any()
            } else {
                view! {
                    <table class="table" id="package-assignments">
                        <thead><tr>
                            <th>"Person"</th><th>"State"</th><th>"Since"</th><th>"Until"</th><th>"Policy"</th>
                            {may_assign.then(|| view! { <th><span class="sr-only">"Actions"</span></th> })}
                        </tr></thead>
                        <tbody>
                            {d.assignments.items.into_iter().map(|a| view! {
                                <tr id=format!("assignment-{}", a.id)>
                                    <td><a href=format!("/admin/people/{}", a.user_id)>{a.name}</a><span class="muted small block">{a.email}</span></td>
                                    <td><span class=format!("state state-{}", a.state.as_str())>{a.state.label()}</span></td>
                                    <td><Time ms=a.start_at /></td>
                                    <td>{match a.end_at { Some(ms) => view! { <Time ms /> }.into_any(), None => view! { "—" }.into_any() }}</td>
                                    <td>{a.policy}</td>
                                    {(may_assign && a.state.is_live()).then(|| view! {
                                        <td class="row-actions">
                                            <ActionForm action=remove attr:class="inline">
                                                <input type="hidden" name="package_id" value=package_id />
                                                <input type="hidden" name="assignment_id" value=a.id />
                                                <input type="hidden" name="reason" value="removed by an assignment manager" />
                                                <button type="submit" class="btn-secondary">"Remove"</button>
                                            </ActionForm>
                                        </td>
                                    })}
                                </tr>
                            }).collect_view()}
                        </tbody>
                    </table>
                }.into_any()
            }}
            {next.map(|href| view! { <p><a class="btn-secondary" href=href>"Older assignments →"</a></p> })}
        </section>
    }
}

/// The builder for this package: edit it with one of its policies, add a policy, copy it.
#[component]
fn Build(
    catalog: i64,
    package: i64,
    policies: Vec<PolicyOption>,
    start: ServerAction<StartPackageDraft>,
) -> impl IntoView {
    view! {
        <section class="panel" aria-labelledby="build-h">
            <h2 id="build-h">"Settings and policies"</h2>
            <ul class="plain" id="package-policies">
                {policies.into_iter().map(|p| view! {
                    <li>
                        {p.name.clone()}" "
                        <ActionForm action=start attr:class="inline">
                            <input type="hidden" name="catalog_id" value=catalog />
                            <input type="hidden" name="from" value="edit" />
                            <input type="hidden" name="package_id" value=package />
                            <input type="hidden" name="policy_id" value=p.id />
                            <button type="submit" class="btn-secondary">{format!("Edit with “{}”", p.name)}</button>
                        </ActionForm>
                    </li>
                }).collect_view()}
            </ul>
            <ActionForm action=start attr:class="inline" attr:id="add-policy">
                <input type="hidden" name="catalog_id" value=catalog />
                <input type="hidden" name="from" value="policy" />
                <input type="hidden" name="package_id" value=package />
                <button type="submit" class="btn-secondary">"Add a policy"</button>
            </ActionForm>" "
            <ActionForm action=start attr:class="inline" attr:id="copy-package">
                <input type="hidden" name="catalog_id" value=catalog />
                <input type="hidden" name="from" value="copy" />
                <input type="hidden" name="package_id" value=package />
                <button type="submit" class="btn-secondary">"Copy this package"</button>
            </ActionForm>
        </section>
    }
}
