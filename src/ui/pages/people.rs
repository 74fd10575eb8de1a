//! People in the admin area: `/admin/people`, finding someone by the start of their name or
//! email, and `/admin/people/:user`, what they have and why — each package with its catalog,
//! policy, the request that gave it (or who assigned it), every stage's decision and the dates.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::Form;
use leptos_router::hooks::{use_params_map, use_query_map};

use crate::ui::api::*;
use crate::ui::components::*;
use crate::views::*;

#[component]
pub fn People() -> impl IntoView {
    view! {
        <Title text="People" />
        <SignedIn>
            <PeopleBody />
        </SignedIn>
    }
}

#[component]
fn PeopleBody() -> impl IntoView {
    let query = use_query_map();
    let q = move || query.read().get("q").unwrap_or_default();
    // Asked even when empty: the answer says whether the viewer may look people up at all.
    let found = Resource::new(q, find_people);
    let after = move || query.read().get("after");
    let listing = Resource::new(after, load_directory);
    view! {
        <p class="crumbs"><a href="/admin">"Admin"</a>" / People"</p>
        <h1>"People"</h1>
        <p class="lead">"Find someone to see what they have, and why."</p>
        <section class="panel">
            <Form method="GET" action="/admin/people" attr:class="filters" attr:role="search">
                <label class="field">
                    <span>"Name or email"</span>
                    <input type="search" name="q" prop:value=q placeholder="the start of a name or an email" />
                </label>
                <button type="submit" class="btn">"Find"</button>
            </Form>
            <Suspense fallback=|| ()>
                {loaded(found, move |r| match r {
                    Ok(people) if people.is_empty() && !q().trim().is_empty() => {
                        view! { <p class="empty">"Nobody active starts with that."</p> }.into_any()
                    }
                    Ok(people) => view! {
                        <ul class="plain" id="people-found">
                            {people.into_iter().map(|p| view! {
                                <li><a href=format!("/admin/people/{}", p.id)>{p.name}</a>" "<span class="muted small">{p.email}</span></li>
                            }).collect_view()}
                        </ul>
                    }.into_any(),
                    Err(e) => view! { <ErrorPanel error=e /> }.into_any(),
                })}
            </Suspense>
        </section>
        <Suspense fallback=|| ()>
            {move || listing.get().and_then(Result::ok).filter(|d| d.may_browse && q().trim().is_empty()).map(|d| view! {
                <section class="panel" aria-labelledby="directory-h">
                    <h2 id="directory-h">"Everyone active, by name"</h2>
                    <ul class="plain" id="directory">
                        {d.people.items.into_iter().map(|p| view! {
                            <li><a href=format!("/admin/people/{}", p.id)>{p.name}</a>" "<span class="muted small">{p.email}</span></li>
                        }).collect_view()}
                    </ul>
                    {d.people.next.map(|n| view! { <p><a class="btn-secondary" href=format!("/admin/people?after={n}")>"More people →"</a></p> })}
                </section>
                <section class="panel" aria-labelledby="groups-h">
                    <h2 id="groups-h">"Groups"</h2>
                    <table class="table" id="groups">
                        <thead><tr><th>"Group"</th><th>"From"</th><th>"Members"</th></tr></thead>
                        <tbody>
                            {d.groups.into_iter().map(|g| view! { <tr><td>{g.name}</td><td>{g.source}</td><td>{g.members}</td></tr> }).collect_view()}
                        </tbody>
                    </table>
                </section>
            })}
        </Suspense>
    }
}

#[component]
pub fn Person() -> impl IntoView {
    view! {
        <SignedIn>
            <PersonBody />
        </SignedIn>
    }
}

#[component]
fn PersonBody() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.read().get("user").and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
    let set_role = ServerAction::<SetGlobalRole>::new();
    let access = Resource::new(move || (id(), set_role.version().get()), |(id, _)| load_person_access(id));
    view! {
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {loaded(access, move |r| match r {
                Ok(a) => view! { <PersonView a set_role /> }.into_any(),
                Err(e) => view! { <ErrorPanel error=e /> }.into_any(),
            })}
        </Suspense>
    }
}

#[component]
fn PersonView(a: PersonAccess, set_role: ServerAction<SetGlobalRole>) -> impl IntoView {
    let p = a.person.clone();
    let facts = [
        (!p.job_title.is_empty()).then(|| p.job_title.clone()),
        (!p.department.is_empty()).then(|| p.department.clone()),
        p.manager.clone().map(|m| format!("manager {m}")),
        p.guest.then(|| "guest".to_owned()),
        (!p.active).then(|| "disabled".to_owned()),
    ];
    let facts: Vec<String> = facts.into_iter().flatten().collect();
    view! {
        <Title text=p.name.clone() />
        <p class="crumbs"><a href="/admin">"Admin"</a>" / "<a href="/admin/people">"People"</a></p>
        <h1>{p.name.clone()}</h1>
        <p class="lead">{p.email.clone()}" · "{facts.join(" · ")}</p>
        {(!a.roles.is_empty()).then(|| view! { <p class="tags">{a.roles.iter().map(|r| view! { <span class="tag">{r.clone()}</span> }).collect_view()}</p> })}
        <Notices latest=set_role.value() flash=flash() />
        {a.may_change_global_roles.then(|| view! {
            <section class="panel" aria-labelledby="global-h" id="global-roles">
                <h2 id="global-h">"Global roles"</h2>
                <GlobalRole set_role user=p.id role="administrator" label="Administrator" held=a.administrator />
                <GlobalRole set_role user=p.id role="catalog_creator" label="Catalog creator" held=a.catalog_creator />
            </section>
        })}
        <section class="panel" aria-labelledby="has-h">
            <h2 id="has-h">"What they have, and why"</h2>
            {if a.access.is_empty() {
                view! { <p class="empty">"No access in the catalogs you manage."</p> }.into_any()
            } else {
                view! {
                    <ul class="plain explain" id="person-access">
                        {a.access.into_iter().map(|x| view! { <ExplainItem x /> }).collect_view()}
                    </ul>
                }.into_any()
            }}
            {(a.hidden > 0).then(|| view! {
                <p class="muted small">{format!("And {} more in catalogs you do not manage.", a.hidden)}</p>
            })}
        </section>
    }
}

/// One global role: whether the person holds it, and the button that changes it.
#[component]
fn GlobalRole(
    set_role: ServerAction<SetGlobalRole>,
    user: i64,
    role: &'static str,
    label: &'static str,
    held: bool,
) -> impl IntoView {
    view! {
        <ActionForm action=set_role attr:class="filters">
            <input type="hidden" name="user_id" value=user />
            <input type="hidden" name="role" value=role />
            <input type="hidden" name="grant" value=if held { "false" } else { "true" } />
            <span class="field">{format!("{label}: {}", if held { "yes" } else { "no" })}</span>
            <button type="submit" class="btn-secondary">
                {if held { format!("Remove {}", label.to_lowercase()) } else { format!("Make {}", label.to_lowercase()) }}
            </button>
        </ActionForm>
    }
}

#[component]
fn ExplainItem(x: AccessExplain) -> impl IntoView {
    view! {
        <li id=format!("explain-{}", x.assignment_id)>
            <h3><a href=format!("/admin/packages/{}", x.package_id)>{x.package.clone()}</a></h3>
            <dl class="facts">
                <dt>"Catalog"</dt><dd>{x.catalog.clone()}</dd>
                <dt>"Policy"</dt><dd>{x.policy.clone()}</dd>
                <dt>"How"</dt>
                <dd>
                    {x.how.clone()}
                    {x.requested_at.map(|ms| view! { " on " <Time ms /> })}
                    {x.request_id.map(|id| view! { " (" <a href=format!("/admin/audit?object_type=request&object_id={id}")>{format!("request {id}")}</a> ")" })}
                    {(!x.justification.is_empty()).then(|| view! { <span class="block muted">{format!("“{}”", x.justification)}</span> })}
                </dd>
                <dt>"Approvals"</dt>
                <dd>
                    {if x.decisions.is_empty() {
                        view! { "None needed" }.into_any()
                    } else {
                        view! {
                            <ol class="plain">
                                {x.decisions.iter().map(|d| view! {
                                    <li>
                                        {format!("Stage {}: {} by {} ", d.stage, d.decision.label(), d.approver)}
                                        <Time ms=d.at />
                                        {(!d.justification.is_empty()).then(|| format!(" — “{}”", d.justification))}
                                    </li>
                                }).collect_view()}
                            </ol>
                        }.into_any()
                    }}
                </dd>
                <dt>"Since"</dt><dd><Time ms=x.start_at /></dd>
                <dt>"Until"</dt>
                <dd>{match x.end_at { Some(ms) => view! { <Time ms /> }.into_any(), None => view! { "No end" }.into_any() }}</dd>
                <dt>"State"</dt><dd>{x.state.label()}</dd>
            </dl>
        </li>
    }
}
