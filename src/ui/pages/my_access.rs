//! My Access (`/`): packages to request, my requests with their timelines, my access.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::Form;
use leptos_router::hooks::use_query_map;

use crate::ui::api::*;
use crate::ui::components::*;
use crate::views::*;

#[component]
pub fn MyAccess() -> impl IntoView {
    view! {
        <Title text="My Access" />
        <SignedIn sign_in_here=true>
            <MyAccessBody />
        </SignedIn>
    }
}

#[component]
fn MyAccessBody() -> impl IntoView {
    let query = use_query_map();
    let q = move || query.read().get("q").unwrap_or_default();
    let catalog = move || query.read().get("catalog").and_then(|c| c.parse::<i64>().ok());
    let after = move || query.read().get("after");
    let requests_before = move || query.read().get("requests_before");
    let access_before = move || query.read().get("access_before");
    // Read once: this body is made after the viewer is known (see `SignedIn`).
    let to_review =
        crate::ui::use_viewer().get_untracked().and_then(Result::ok).flatten().map_or(0, |v| v.pending_reviews);
    let cancel = ServerAction::<CancelRequest>::new();
    let give_up = ServerAction::<GiveUpAccess>::new();
    let extend = ServerAction::<ExtendAccess>::new();
    let packages = Resource::new(move || (q(), catalog(), after()), |(q, c, a)| browse_packages(q, c, a));
    let requests = Resource::new(
        move || (cancel.version().get(), extend.version().get(), requests_before()),
        |(_, _, before)| my_requests(before),
    );
    let access = Resource::new(
        move || (give_up.version().get(), extend.version().get(), access_before()),
        |(_, _, before)| my_access(before),
    );
    let latest = latest_of(vec![cancel.value().into(), give_up.value().into(), extend.value().into()]);

    view! {
        <h1>"My Access"</h1>
        <Notices latest flash=flash() />
        {(to_review > 0).then(|| view! {
            <section class="panel" aria-labelledby="my-reviews-h" id="my-reviews">
                <h2 id="my-reviews-h">"Access reviews"</h2>
                <p>
                    {if to_review == 1 { "1 person's access waits for your review. ".to_owned() } else { format!("{to_review} people's access waits for your review. ") }}
                    <a class="btn" href="/reviews">"Review access"</a>
                </p>
            </section>
        })}
        <section class="panel" aria-labelledby="browse-h">
            <div class="panel-head">
                <h2 id="browse-h">"Request access"</h2>
            </div>
            <Form method="GET" action="/" attr:class="search" attr:role="search">
                <label class="sr-only" for="q">"Search packages"</label>
                <input id="q" type="search" name="q" placeholder="Search by name, description or resource" prop:value=q />
                <label class="sr-only" for="catalog">"Catalog"</label>
                <Suspense fallback=|| ()>
                    <select id="catalog" name="catalog">
                        <option value="">"All catalogs"</option>
                        {loaded(packages, move |r| r.ok().map(|b| b.catalogs.into_iter().map(|c| {
                            let selected = catalog() == Some(c.id);
                            view! { <option value=c.id.to_string() selected=selected>{c.name}</option> }
                        }).collect_view()))}
                    </select>
                </Suspense>
                <button type="submit" class="btn">"Search"</button>
            </Form>
            <Suspense fallback=|| view! { <p class="muted">"Loading packages…"</p> }>
                {loaded(packages, move |r| match r {
                    Ok(b) if b.page.items.is_empty() => view! {
                        <p class="empty">"No access packages match. Try another search, or ask your manager which package you need."</p>
                    }.into_any(),
                    Ok(b) => {
                        let next = b.page.next.clone();
                        view! {
                            <ul class="cards" id="packages">
                                {b.page.items.into_iter().map(|p| view! { <PackageCardView card=p /> }).collect_view()}
                            </ul>
                            {next.map(|n| {
                                let href = format!("/?q={}&catalog={}&after={}", urlencode(&q()), catalog().unwrap_or(0), n);
                                view! { <p><a class="btn-secondary" href=href>"More packages →"</a></p> }
                            })}
                        }.into_any()
                    }
                    Err(e) => view! { <ErrorPanel error=e /> }.into_any(),
                })}
            </Suspense>
        </section>

        <section class="panel" aria-labelledby="requests-h">
            <h2 id="requests-h">"My requests"</h2>
            <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {loaded(requests, move |r| match r {
                    Ok(page) if page.items.is_empty() => view! { <p class="empty">"You have not requested anything yet."</p> }.into_any(),
                    Ok(page) => view! {
                        <ul class="requests">
                            {page.items.into_iter().map(|r| view! { <RequestItem request=r cancel /> }).collect_view()}
                        </ul>
                        {page.next.map(|n| view! { <p><a class="btn-secondary" href=format!("/?requests_before={n}#requests-h")>"Older requests →"</a></p> })}
                    }.into_any(),
                    Err(e) => view! { <ErrorPanel error=e /> }.into_any(),
                })}
            </Suspense>
        </section>

        <section class="panel" aria-labelledby="access-h">
            <h2 id="access-h">"My access"</h2>
            <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {loaded(access, move |r| match r {
                    Ok(page) if page.items.is_empty() => view! { <p class="empty">"No access packages assigned to you yet."</p> }.into_any(),
                    Ok(page) => view! {
                        <table class="table" id="my-access">
                            <thead><tr><th>"Package"</th><th>"Status"</th><th>"Since"</th><th>"Until"</th><th><span class="sr-only">"Actions"</span></th></tr></thead>
                            <tbody>
                                {page.items.into_iter().map(|a| view! { <AssignmentRow a give_up extend /> }).collect_view()}
                            </tbody>
                        </table>
                        {page.next.map(|n| view! { <p><a class="btn-secondary" href=format!("/?access_before={n}#access-h")>"Older access →"</a></p> })}
                    }.into_any(),
                    Err(e) => view! { <ErrorPanel error=e /> }.into_any(),
                })}
            </Suspense>
        </section>

        <p class="muted small">
            "What you are emailed, and in which time zone, is in "<a href="/settings">"your settings"</a>
            ". Scripts and tools act as you with "<a href="/tokens">"API tokens"</a>"."
        </p>
    }
}

#[component]
fn PackageCardView(card: PackageCard) -> impl IntoView {
    // Only the hydrated page can toggle this; without JavaScript the package page lists them.
    let expanded = RwSignal::new(false);
    let approval = match card.approval_stages {
        0 => "No approval needed".to_owned(),
        1 => "1 approval stage".to_owned(),
        n => format!("{n} approval stages"),
    };
    let resources = card.resources.clone();
    let count = resources.len();
    view! {
        <li class="card">
            <div class="card-top">
                <span class="chip">{card.catalog.clone()}</span>
                <span class="muted small">{approval}</span>
            </div>
            <h3><a href=format!("/packages/{}", card.id)>{card.name.clone()}</a></h3>
            <p class="desc">{card.description.clone()}</p>
            <p class="muted small">{card.expiration.clone()}</p>
            <button
                type="button"
                class="btn-link toggle-resources"
                aria-expanded=move || expanded.get().to_string()
                on:click=move |_| expanded.update(|e| *e = !*e)
            >
                {move || if expanded.get() {
                    "Hide resources".to_owned()
                } else if count == 1 {
                    "Show 1 resource".to_owned()
                } else {
                    format!("Show {count} resources")
                }}
            </button>
            <Show when=move || expanded.get()>
                <ul class="resource-list">
                    {resources.clone().into_iter().map(|r| view! { <li>{r.resource}" · "{r.role}</li> }).collect_view()}
                </ul>
            </Show>
            {match card.status {
                PackageStatus::Held => view! { <span class="state state-delivered card-status">"You have this"</span> }.into_any(),
                PackageStatus::Pending => view! { <span class="state state-pending_approval card-status">"Request pending"</span> }.into_any(),
                PackageStatus::Available => view! { <a class="btn" href=format!("/packages/{}", card.id)>"Request"</a> }.into_any(),
            }}
        </li>
    }
}

#[component]
fn RequestItem(request: RequestView, cancel: ServerAction<CancelRequest>) -> impl IntoView {
    let state_class = format!("state state-{}", request.state.as_str());
    view! {
        <li class="request" id=format!("request-{}", request.id)>
            <div class="request-head">
                <strong>{request.package.clone()}</strong>
                <span class=state_class>{request.state.label()}</span>
                {(request.target != request.requestor).then(|| view! {
                    <span class="muted small">{format!("for {} (asked by {})", request.target, request.requestor)}</span>
                })}
                <span class="muted small"><Time ms=request.created_at /></span>
            </div>
            <ol class="timeline">
                {request.timeline.into_iter().map(|s| view! {
                    <li class=format!("step step-{}", s.status.as_str())>
                        <span class="step-title">{s.title}</span>
                        <span class="step-detail">{s.detail}</span>
                        {s.at.map(|t| view! { <span class="muted small"><Time ms=t /></span> })}
                    </li>
                }).collect_view()}
            </ol>
            {request.can_cancel.then(|| view! {
                <ActionForm action=cancel attr:class="inline">
                    <input type="hidden" name="request_id" value=request.id />
                    <button type="submit" class="btn-secondary">"Cancel request"</button>
                </ActionForm>
            })}
        </li>
    }
}

#[component]
fn AssignmentRow(
    a: AssignmentView,
    give_up: ServerAction<GiveUpAccess>,
    extend: ServerAction<ExtendAccess>,
) -> impl IntoView {
    let label = match a.bucket {
        AccessBucket::Expiring => "Expiring soon",
        AccessBucket::Ended => "Ended",
        AccessBucket::Scheduled | AccessBucket::Active => a.state.label(),
    };
    let live = a.bucket != AccessBucket::Ended;
    view! {
        <tr class=format!("assignment bucket-{}", a.bucket.as_str())>
            <td>
                <strong>{a.package.clone()}</strong>
                <div class="muted small">{a.resources.iter().map(|r| format!("{} · {}", r.resource, r.role)).collect::<Vec<_>>().join(", ")}</div>
            </td>
            <td>{if a.bucket == AccessBucket::Scheduled {
                view! { <span class="state state-scheduled">"Starts "<Time ms=a.start_at /></span> }.into_any()
            } else {
                view! { <span class=format!("state state-{}", a.state.as_str())>{label}</span> }.into_any()
            }}</td>
            <td><Time ms=a.start_at /></td>
            <td>{match a.end_at {
                Some(end) => view! { <Time ms=end /> }.into_any(),
                None => "No end date".into_any(),
            }}</td>
            <td class="row-actions">
                {a.can_extend.then(|| view! {
                    <ActionForm action=extend attr:class="inline">
                        <input type="hidden" name="assignment_id" value=a.id />
                        <input type="hidden" name="justification" value="I still need this access" />
                        <button type="submit" class="btn-link">"Extend"</button>
                    </ActionForm>
                })}
                {live.then(|| view! {
                    <ActionForm action=give_up attr:class="inline">
                        <input type="hidden" name="assignment_id" value=a.id />
                        <button type="submit" class="btn-link danger">"Give up"</button>
                    </ActionForm>
                })}
            </td>
        </tr>
    }
}
