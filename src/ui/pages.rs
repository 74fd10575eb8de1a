//! Page components.

use leptos::prelude::*;
use leptos::reactive::computed::ScopedFuture;
use leptos_meta::Title;
use leptos_router::components::{Form, Redirect};
use leptos_router::hooks::{use_params_map, use_query_map};
use std::future::IntoFuture;

use super::api::*;
use super::error::AppError;
use super::{use_viewer, NoticeBanner, Time};
use crate::views::*;

/// Shows its children to signed-in people; sends everyone else to the sign-in page (or, with
/// `sign_in_here`, shows the sign-in choices in place: the landing page does that).
///
/// The children are made once per request: inside one `Suspend` that awaits the viewer. Made
/// in a closure instead, the server made them up to three times (the boundary walks its
/// children to find their resources, then renders them), and every resource in them ran its
/// server function as often.
#[component]
fn SignedIn(children: ChildrenFn, #[prop(optional)] sign_in_here: bool) -> impl IntoView {
    let viewer = use_viewer();
    // A `Suspend` as the boundary's child itself, not made by a closure: the boundary walks
    // its children more than once on the server (to find every resource before it renders),
    // and a closure would run again on each walk, making the children anew each time.
    view! {
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {Suspend::new(async move {
                // Untracked: the viewer resolving must not re-run anything that made this.
                match ScopedFuture::new_untracked(viewer.into_future()).await {
                    // Made untracked too: what the children read while they are made (their
                    // resources' sources) is theirs to track.
                    Ok(Some(_)) => untrack(|| children().into_any()),
                    Ok(None) | Err(AppError::Unauthenticated) if sign_in_here => view! { <SignIn /> }.into_any(),
                    Ok(None) | Err(AppError::Unauthenticated) => {
                        let back = super::current_path();
                        let path = format!("/signin?return_to={}", urlencode(&back));
                        redirect_status(&path);
                        view! { <Redirect path=path /> }.into_any()
                    }
                    Err(e) => view! { <ErrorPanel error=e /> }.into_any(),
                }
            })}
        </Suspense>
    }
}

/// A server-rendered redirect answers 302 to every client (Leptos only does so for clients
/// that ask for HTML); in the browser the router navigates.
fn redirect_status(path: &str) {
    #[cfg(feature = "ssr")]
    if let (Some(res), Ok(location)) =
        (use_context::<leptos_axum::ResponseOptions>(), http::HeaderValue::from_str(path))
    {
        res.set_status(http::StatusCode::FOUND);
        res.insert_header(http::header::LOCATION, location);
    }
    #[cfg(not(feature = "ssr"))]
    let _ = path;
}

/// The right status code for the server-rendered response.
fn set_status(code: u16) {
    #[cfg(feature = "ssr")]
    if let Some(res) = use_context::<leptos_axum::ResponseOptions>() {
        if let Ok(status) = http::StatusCode::from_u16(code) {
            res.set_status(status);
        }
    }
    #[cfg(not(feature = "ssr"))]
    let _ = code;
}

/// An error, explained: 403 and 404 say what happened and where to go; others apologise.
/// The page answers with the status a server function would ([`AppError::status`]).
#[component]
pub fn ErrorPanel(error: AppError) -> impl IntoView {
    let code = error.status();
    let title = match &error {
        AppError::Unauthenticated => "Please sign in",
        AppError::Forbidden(_) => "You don't have access to this",
        AppError::NotFound(_) => "Not found",
        AppError::Invalid { .. } | AppError::Conflict(_) | AppError::AlreadyDecided(_) => "That didn't work",
        AppError::Internal | AppError::Transport(_) => "Something went wrong",
    };
    set_status(code);
    view! {
        <section class="error-page" role="alert">
            <p class="error-code">{code}</p>
            <h1>{title}</h1>
            <p>{error.to_string()}</p>
            <p><a href="/">"Back to My Access"</a></p>
        </section>
    }
}

#[component]
pub fn NotFound() -> impl IntoView {
    view! {
        <Title text="Not found" />
        <ErrorPanel error=AppError::NotFound("there is no page at this address".into()) />
    }
}

/// Shows the latest action's outcome: from a hydrated form (the action's value) or, with
/// JavaScript off, from the session (`take_notice`).
/// The outcome of the last plain-form action (JavaScript off), read once from the session.
type Flash = Resource<Result<Option<Notice>, AppError>>;

fn flash() -> Flash {
    Resource::new(|| (), |_| take_notice())
}

#[component]
fn Notices(#[prop(into)] latest: Signal<Option<Result<Notice, AppError>>>, flash: Flash) -> impl IntoView {
    view! {
        <div class="notices" aria-live="polite">
            {move || latest.get().map(|r| match r {
                Ok(n) => view! { <NoticeBanner notice=n /> }.into_any(),
                Err(e) => view! { <NoticeBanner notice=Notice { ok: false, text: e.to_string(), field: None } /> }.into_any(),
            })}
            <Suspense fallback=|| ()>
                {move || flash.get().and_then(|r| r.ok().flatten()).map(|n| view! { <NoticeBanner notice=n /> })}
            </Suspense>
        </div>
    }
}

fn latest_of(actions: Vec<Signal<Option<Result<Notice, AppError>>>>) -> Signal<Option<Result<Notice, AppError>>> {
    // The most recent non-empty outcome among several actions.
    let last = RwSignal::new(None);
    for a in actions {
        Effect::new(move |_| {
            if let Some(v) = a.get() {
                last.set(Some(v));
            }
        });
    }
    last.into()
}

// ---------------------------------------------------------------- My Access

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
                        {move || packages.get().and_then(Result::ok).map(|b| b.catalogs.into_iter().map(|c| {
                            let selected = catalog() == Some(c.id);
                            view! { <option value=c.id.to_string() selected=selected>{c.name}</option> }
                        }).collect_view())}
                    </select>
                </Suspense>
                <button type="submit" class="btn">"Search"</button>
            </Form>
            <Suspense fallback=|| view! { <p class="muted">"Loading packages…"</p> }>
                {move || packages.get().map(|r| match r {
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
                {move || requests.get().map(|r| match r {
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
                {move || access.get().map(|r| match r {
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
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            b' ' => "+".to_owned(),
            _ => format!("%{b:02X}"),
        })
        .collect()
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
            {match card.status.as_str() {
                "held" => view! { <span class="state state-delivered card-status">"You have this"</span> }.into_any(),
                "pending" => view! { <span class="state state-pending_approval card-status">"Request pending"</span> }.into_any(),
                _ => view! { <a class="btn" href=format!("/packages/{}", card.id)>"Request"</a> }.into_any(),
            }}
        </li>
    }
}

#[component]
fn RequestItem(request: RequestView, cancel: ServerAction<CancelRequest>) -> impl IntoView {
    let state_class = format!("state state-{}", request.state);
    view! {
        <li class="request" id=format!("request-{}", request.id)>
            <div class="request-head">
                <strong>{request.package.clone()}</strong>
                <span class=state_class>{request.state_label.clone()}</span>
                {(request.target != request.requestor).then(|| view! {
                    <span class="muted small">{format!("for {} (asked by {})", request.target, request.requestor)}</span>
                })}
                <span class="muted small"><Time ms=request.created_at /></span>
            </div>
            <ol class="timeline">
                {request.timeline.into_iter().map(|s| view! {
                    <li class=format!("step step-{}", s.status)>
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
    let label = match a.bucket.as_str() {
        "expiring" => "Expiring soon",
        "ended" => "Ended",
        _ => match a.state.as_str() {
            "delivering" => "Being delivered",
            "delivery_failed" => "Delivery failed",
            _ => "Active",
        },
    };
    let live = a.bucket != "ended";
    view! {
        <tr class=format!("assignment bucket-{}", a.bucket)>
            <td>
                <strong>{a.package.clone()}</strong>
                <div class="muted small">{a.resources.iter().map(|r| format!("{} · {}", r.resource, r.role)).collect::<Vec<_>>().join(", ")}</div>
            </td>
            <td>{if a.bucket == "scheduled" {
                view! { <span class="state state-scheduled">"Starts "<Time ms=a.start_at /></span> }.into_any()
            } else {
                view! { <span class=format!("state state-{}", a.state)>{label}</span> }.into_any()
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

// ---------------------------------------------------------------- Package page + request form

#[component]
pub fn PackagePage() -> impl IntoView {
    view! {
        <SignedIn>
            <PackageBody />
        </SignedIn>
    }
}

#[component]
fn PackageBody() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.read().get("id").and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
    let detail = Resource::new(id, load_package);
    let submit = ServerAction::<RequestAccess>::new();
    let flash = flash();
    view! {
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || detail.get().map(|r| match r {
                Ok(d) => view! { <PackageView d submit flash /> }.into_any(),
                Err(e) => view! { <ErrorPanel error=e /> }.into_any(),
            })}
        </Suspense>
    }
}

#[component]
fn PackageView(d: PackageDetail, submit: ServerAction<RequestAccess>, flash: Flash) -> impl IntoView {
    // A message about one field shows next to it: from the hydrated form's answer, or (with
    // JavaScript off) from the outcome carried over the redirect.
    let field_error = move |field: String| {
        move || {
            let from_action = match submit.value().get() {
                Some(Err(AppError::Invalid { field: Some(f), message })) if f == field => Some(message),
                _ => None,
            };
            let from_flash = flash
                .get()
                .and_then(|r| r.ok().flatten())
                .filter(|n| n.field.as_deref() == Some(field.as_str()))
                .map(|n| n.text);
            from_action.or(from_flash).map(|message| view! { <p class="field-error" role="alert">{message}</p> })
        }
    };
    let on_behalf = d.policies.iter().any(|p| p.on_behalf_allowed) && !d.reports.is_empty();
    let schedule = d.policies.iter().any(|p| p.schedule_allowed);
    let reports = d.reports.clone();
    let several = d.policies.len() > 1;
    let card = d.card.clone();
    view! {
        <Title text=card.name.clone() />
        <p class="crumbs"><a href="/">"My Access"</a>" / "{card.catalog.clone()}</p>
        <h1>{card.name.clone()}</h1>
        <p class="lead">{card.description.clone()}</p>
        <Notices latest=Signal::derive(move || submit.value().get()) flash />
        {d.sod_warning.clone().map(|w| view! { <p class="notice warn" role="alert">{w}</p> })}
        <div class="two-col">
            <section class="panel">
                <h2>"What you get"</h2>
                <ul class="resource-list">
                    {card.resources.iter().map(|r| view! { <li><strong>{r.resource.clone()}</strong>" · "{r.role.clone()}<span class="muted small">{format!(" ({})", r.system)}</span></li> }).collect_view()}
                </ul>
                {d.policies.iter().map(|p| view! {
                    <div class="policy">
                        <h3>{p.name.clone()}</h3>
                        <ul>
                            {if p.stages.is_empty() { view! { <li>"No approval needed"</li> }.into_any() } else {
                                p.stages.iter().map(|s| view! { <li>{s.clone()}</li> }).collect_view().into_any()
                            }}
                            <li>{format!("Access {}", p.expiration)}</li>
                        </ul>
                    </div>
                }).collect_view()}
            </section>
            <section class="panel">
                <h2>"Request it"</h2>
                <ActionForm action=submit attr:class="form" attr:id="request-form">
                    <input type="hidden" name="package_id" value=card.id />
                    {if several {
                        view! {
                            <fieldset>
                                <legend>"Request under"</legend>
                                {d.policies.iter().enumerate().map(|(i, p)| view! {
                                    <label class="radio"><input type="radio" name="policy_id" value=p.id checked=i == 0 />{p.name.clone()}</label>
                                }).collect_view()}
                            </fieldset>
                        }.into_any()
                    } else {
                        d.policies.first().map(|p| view! { <input type="hidden" name="policy_id" value=p.id /> }).into_any()
                    }}
                    {on_behalf.then(|| view! {
                        <label for="on_behalf_of">"Who is it for?"</label>
                        <select id="on_behalf_of" name="on_behalf_of">
                            <option value="">"Me"</option>
                            {reports.iter().map(|(id, name)| view! { <option value=id.to_string()>{name.clone()}</option> }).collect_view()}
                        </select>
                        {field_error("on_behalf_of".into())}
                    })}
                    {schedule.then(|| view! {
                        <div class="dates">
                            <span>
                                <label for="start">"From (optional)"</label>
                                <input type="date" id="start" name="start" />
                                {field_error("start".into())}
                            </span>
                            <span>
                                <label for="end">"Until (optional)"</label>
                                <input type="date" id="end" name="end" />
                                {field_error("end".into())}
                            </span>
                        </div>
                    })}
                    {d.policies.first().map(|p| {
                        let required = p.justification_required;
                        view! {
                            <label for="justification">{if required { "Why do you need it? (required)" } else { "Why do you need it?" }}</label>
                            <textarea id="justification" name="justification" rows="3" required=required></textarea>
                            {field_error("justification".into())}
                            {p.questions.iter().map(|q| {
                                let name = format!("answers[{}]", q.id);
                                let id = format!("q_{}", q.id);
                                let label = if q.required { format!("{} (required)", q.prompt) } else { q.prompt.clone() };
                                let input = if q.options.is_empty() {
                                    view! { <input type="text" id=id.clone() name=name required=q.required /> }.into_any()
                                } else {
                                    view! {
                                        <select id=id.clone() name=name required=q.required>
                                            <option value="">"Choose…"</option>
                                            {q.options.iter().map(|o| view! { <option value=o.clone()>{o.clone()}</option> }).collect_view()}
                                        </select>
                                    }.into_any()
                                };
                                let err = field_error(id.clone());
                                view! {
                                    <label for=id>{label}</label>
                                    {input}
                                    {err}
                                }
                            }).collect_view()}
                        }
                    })}
                    <button type="submit" class="btn" disabled=move || submit.pending().get()>
                        {move || if submit.pending().get() { "Sending…" } else { "Submit request" }}
                    </button>
                </ActionForm>
            </section>
        </div>
    }
}

// ---------------------------------------------------------------- Approvals

#[component]
pub fn Approvals() -> impl IntoView {
    view! {
        <Title text="Approvals" />
        <SignedIn>
            <ApprovalsBody />
        </SignedIn>
    }
}

#[component]
fn ApprovalsBody() -> impl IntoView {
    let query = use_query_map();
    let after = move || query.read().get("after");
    let history_before = move || query.read().get("history_before");
    let decide = ServerAction::<Decide>::new();
    let bulk = ServerAction::<DecideMany>::new();
    let pending = Resource::new(
        move || (decide.version().get(), bulk.version().get(), after()),
        |(_, _, a)| pending_approvals(a),
    );
    let history = Resource::new(
        move || (decide.version().get(), bulk.version().get(), history_before()),
        |(_, _, b)| decision_history(b),
    );
    let latest = latest_of(vec![decide.value().into(), bulk.value().into()]);
    view! {
        <h1>"Approvals"</h1>
        <Notices latest flash=flash() />
        <section class="panel" aria-labelledby="pending-h">
            <h2 id="pending-h">"Waiting for you"</h2>
            <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || pending.get().map(|r| match r {
                    Ok(page) if page.items.is_empty() => view! { <p class="empty">"Nothing waits for your decision."</p> }.into_any(),
                    Ok(page) => view! {
                        <ActionForm action=bulk attr:id="bulk-form" attr:class="form bulk">
                            <p class="small muted">"Tick requests below to decide several at once."</p>
                            <label for="bulk-justification">"Reason for all selected"</label>
                            <textarea id="bulk-justification" name="justification" rows="2"></textarea>
                            <div class="actions">
                                <button type="submit" name="decision" value="approve" class="btn">"Approve selected"</button>
                                <button type="submit" name="decision" value="deny" class="btn-danger">"Deny selected"</button>
                            </div>
                        </ActionForm>
                        <ul class="approvals">
                            {page.items.into_iter().enumerate().map(|(index, item)| view! { <ApprovalCard item index decide as_of=page.as_of /> }).collect_view()}
                        </ul>
                        {page.next.map(|n| view! { <p><a class="btn-secondary" href=format!("/approvals?after={n}")>"More requests →"</a></p> })}
                    }.into_any(),
                    Err(e) => view! { <ErrorPanel error=e /> }.into_any(),
                })}
            </Suspense>
        </section>
        <section class="panel" aria-labelledby="history-h">
            <h2 id="history-h">"Your decisions"</h2>
            <Suspense fallback=|| ()>
                {move || history.get().map(|r| match r {
                    Ok(page) if page.items.is_empty() => view! { <p class="empty">"No decisions yet."</p> }.into_any(),
                    Ok(page) => view! {
                        <table class="table" id="history">
                            <thead><tr><th>"Package"</th><th>"For"</th><th>"Stage"</th><th>"Decision"</th><th>"When"</th></tr></thead>
                            <tbody>
                                {page.items.into_iter().map(|d| view! {
                                    <tr>
                                        <td>{d.package}</td>
                                        <td>{d.target}</td>
                                        <td>{d.stage}</td>
                                        <td><span class=format!("state state-{}", d.decision)>{d.decision.clone()}</span>{(!d.justification.is_empty()).then(|| format!(" — “{}”", d.justification))}</td>
                                        <td><Time ms=d.decided_at /></td>
                                    </tr>
                                }).collect_view()}
                            </tbody>
                        </table>
                        {page.next.map(|n| view! { <p><a class="btn-secondary" href=format!("/approvals?history_before={n}#history-h")>"Older decisions →"</a></p> })}
                    }.into_any(),
                    Err(e) => view! { <ErrorPanel error=e /> }.into_any(),
                })}
            </Suspense>
        </section>
    }
}

#[component]
fn ApprovalCard(item: ApprovalItem, index: usize, decide: ServerAction<Decide>, as_of: i64) -> impl IntoView {
    let jid = format!("justification-{}", item.request_id);
    let select_id = format!("select-{}", item.request_id);
    let select_for = select_id.clone();
    view! {
        <li class="approval card" id=format!("approval-{}", item.request_id)>
            <div class="card-top">
                <label class="select" for=select_for>
                    <input type="checkbox" id=select_id form="bulk-form" name=format!("request_ids[{index}]") value=item.request_id />
                    <span class="sr-only">{format!("Select the request of {} for {}", item.target, item.package)}</span>
                </label>
                <span class="chip">{format!("Stage {} of {}", item.stage, item.stage_count)}</span>
                {item.due_at.map(|d| view! {
                    <span class="muted small"><Time ms=d />{format!(" · due {}", super::relative(d, as_of))}</span>
                })}
            </div>
            <h3>{item.package.clone()}{item.is_extension.then(|| view! { <span class="chip">"Extension"</span> })}</h3>
            <p>
                <strong>{item.target.clone()}</strong>
                <span class="muted">{format!(" · {}", item.target_title)}</span>
                {(item.requestor != item.target).then(|| view! { <span class="muted">{format!(" · asked by {}", item.requestor)}</span> })}
            </p>
            <p class="muted small">"Submitted "<Time ms=item.created_at />{format!(" · {}", super::relative(item.created_at, as_of))}</p>
            {(!item.justification.is_empty()).then(|| view! { <blockquote>{item.justification.clone()}</blockquote> })}
            <ApprovalSchedule item=item.clone() />
            {(!item.answers.is_empty()).then(|| view! {
                <dl class="answers">
                    {item.answers.iter().map(|(q, a)| view! { <dt>{q.clone()}</dt><dd>{a.clone()}</dd> }).collect_view()}
                </dl>
            })}
            <p class="small"><strong>"Grants: "</strong>{item.resources.iter().map(|r| format!("{} · {}", r.resource, r.role)).collect::<Vec<_>>().join(", ")}</p>
            <p class="small"><strong>"Already has: "</strong>{if item.current_access.is_empty() { "nothing yet".to_owned() } else { item.current_access.join(", ") }}</p>
            {item.sod_warning.clone().map(|w| view! { <p class="notice warn" role="alert">{w}</p> })}
            <ActionForm action=decide attr:class="form decide">
                <input type="hidden" name="request_id" value=item.request_id />
                <label for=jid.clone()>{if item.justification_required { "Reason (required)" } else { "Reason (optional)" }}</label>
                <textarea id=jid name="justification" rows="2" required=item.justification_required></textarea>
                <div class="actions">
                    <button type="submit" name="decision" value="approve" class="btn">"Approve"</button>
                    <button type="submit" name="decision" value="deny" class="btn-danger">"Deny"</button>
                </div>
            </ActionForm>
        </li>
    }
}

/// When the access would start and end, as the requestor asked: the dates they chose, or
/// "when approved" and the policy's period counted from then.
#[component]
fn ApprovalSchedule(item: ApprovalItem) -> impl IntoView {
    if item.is_extension {
        return view! {
            <p class="small schedule"><strong>"New end: "</strong>{item.period}</p>
        }
        .into_any();
    }
    let start = match item.start_at {
        Some(t) => view! { <Time ms=t /> }.into_any(),
        None => "when approved".into_any(),
    };
    let end = match item.end_at {
        Some(t) => view! { <Time ms=t />" (chosen by the requestor)" }.into_any(),
        None => item.period.into_any(),
    };
    view! {
        <p class="small schedule">
            <strong>"Starts: "</strong>{start}
            <span class="sep" aria-hidden="true">" · "</span>
            <strong>"Ends: "</strong>{end}
        </p>
    }
    .into_any()
}

// ---------------------------------------------------------------- Admin

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
            <FailedWork />
            <AdminCatalogs />
            {v.is_admin.then(|| view! { <BuiltinGroups /> })}
        }
        .into_any(),
        _ => view! { <ErrorPanel error=AppError::Forbidden("the admin area is for administrators and catalog managers".into()) /> }
            .into_any(),
    }
}

#[component]
fn AdminCatalogs() -> impl IntoView {
    let packages = Resource::new(|| (), |_| browse_packages(String::new(), None, None));
    view! {
        <section class="panel">
            <h2>"Catalogs"</h2>
            <Suspense fallback=|| ()>
                {move || packages.get().and_then(Result::ok).map(|b| view! {
                    <ul class="plain">
                        {b.catalogs.into_iter().map(|c| view! { <li><a href=format!("/?catalog={}", c.id)>{c.name}</a></li> }).collect_view()}
                    </ul>
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
                {move || work.get().map(|r| match r {
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
                {move || groups.get().map(|r| match r {
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

// ---------------------------------------------------------------- Sign-in

#[component]
pub fn SignIn() -> impl IntoView {
    let choices = Resource::new(|| (), |_| sign_in_options());
    let viewer = use_viewer();
    let query = use_query_map();
    let return_to = move || query.read().get("return_to").unwrap_or_else(|| "/".into());
    view! {
        <Title text="Sign in" />
        <section class="signin">
            <h1>"Sign in to Quartermaster"</h1>
            <Suspense fallback=|| ()>
                {move || viewer.get().and_then(Result::ok).flatten().map(|v| view! {
                    <p class="notice ok">{format!("You are signed in as {}. ", v.name)}<a href="/">"Go to My Access"</a></p>
                })}
            </Suspense>
            <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || choices.get().map(|r| match r {
                    Ok(c) => {
                        let provider = c.provider.clone().map(|name| view! {
                            <p><a class="btn btn-large" id="oidc-login" rel="external" href=format!("/auth/login?return_to={}", urlencode(&return_to()))>
                                {format!("Sign in with {name}")}
                            </a></p>
                        });
                        let none = (c.provider.is_none() && c.people.is_empty()).then(|| view! {
                            <p>"Sign-in is not configured on this server yet. Ask your administrator."</p>
                        });
                        let people = (!c.people.is_empty()).then(|| view! {
                            <p class="lead">"Demo mode: pick a person to sign in as. Every account here is fictional."</p>
                            <ul class="people">
                                {c.people.into_iter().map(|p| view! {
                                    <li>
                                        <form method="post" action="/auth/demo">
                                            <input type="hidden" name="user_id" value=p.id />
                                            <input type="hidden" name="return_to" value=return_to() />
                                            <button type="submit" class="person" data-email=p.email.clone()>
                                                <span class="avatar" aria-hidden="true">{super::initials(&p.name)}</span>
                                                <span class="person-text">
                                                    <strong>{p.name.clone()}</strong>
                                                    <span class="muted small">{format!("{} · {}", p.title, p.department)}</span>
                                                    {(!p.roles.is_empty()).then(|| view! { <span class="chip">{p.roles.join(", ")}</span> })}
                                                </span>
                                            </button>
                                        </form>
                                    </li>
                                }).collect_view()}
                            </ul>
                        });
                        view! { {provider} {none} {people} }.into_any()
                    }
                    Err(e) => view! { <ErrorPanel error=e /> }.into_any(),
                })}
            </Suspense>
        </section>
    }
}
