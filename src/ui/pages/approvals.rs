//! Approvals (`/approvals`): decisions waiting for me, and the ones I made.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::ui::api::*;
use crate::ui::components::*;
use crate::views::*;

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
    let set_deputy = ServerAction::<SetDeputy>::new();
    let end_deputy = ServerAction::<EndDeputy>::new();
    let away = Resource::new(move || (set_deputy.version().get(), end_deputy.version().get()), |_| load_deputies(None));
    let pending = Resource::new(
        move || (decide.version().get(), bulk.version().get(), after()),
        |(_, _, a)| pending_approvals(a),
    );
    let history = Resource::new(
        move || (decide.version().get(), bulk.version().get(), history_before()),
        |(_, _, b)| decision_history(b),
    );
    let latest = latest_of(vec![
        decide.value().into(),
        bulk.value().into(),
        set_deputy.value().into(),
        end_deputy.value().into(),
    ]);
    view! {
        <h1>"Approvals"</h1>
        <Notices latest flash=flash() />
        <section class="panel" aria-labelledby="pending-h">
            <h2 id="pending-h">"Waiting for you"</h2>
            <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {loaded(pending, move |r| match r {
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
        <OutOfOffice away set_deputy end_deputy />
        <section class="panel" aria-labelledby="history-h">
            <h2 id="history-h">"Your decisions"</h2>
            <Suspense fallback=|| ()>
                {loaded(history, move |r| match r {
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
                                        <td><span class=format!("state state-{}", d.decision.as_str())>{d.decision.label()}</span>{(!d.justification.is_empty()).then(|| format!(" — “{}”", d.justification))}</td>
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
    // Taken apart: each field moves into the view once, nothing is cloned.
    let ApprovalItem {
        request_id,
        requestor,
        target,
        target_title,
        package,
        stage,
        stage_count,
        created_at,
        due_at,
        justification,
        answers,
        justification_required,
        resources,
        current_access,
        sod_warning,
        is_extension,
        start_at,
        end_at,
        period,
    } = item;
    let jid = format!("justification-{request_id}");
    let jid_for = jid.clone();
    let select_id = format!("select-{request_id}");
    let select_for = select_id.clone();
    let select_label = format!("Select the request of {target} for {package}");
    let asked_by = (requestor != target).then(|| format!(" · asked by {requestor}"));
    let grants = resources.iter().map(|r| format!("{} · {}", r.resource, r.role)).collect::<Vec<_>>().join(", ");
    let has = if current_access.is_empty() { "nothing yet".to_owned() } else { current_access.join(", ") };
    view! {
        <li class="approval card" id=format!("approval-{request_id}")>
            <div class="card-top">
                <label class="select" for=select_for>
                    <input type="checkbox" id=select_id form="bulk-form" name=format!("request_ids[{index}]") value=request_id />
                    <span class="sr-only">{select_label}</span>
                </label>
                <span class="chip">{format!("Stage {stage} of {stage_count}")}</span>
                {due_at.map(|d| view! {
                    <span class="muted small"><Time ms=d />{format!(" · due {}", relative(d, as_of))}</span>
                })}
            </div>
            <h3>{package}{is_extension.then(|| view! { <span class="chip">"Extension"</span> })}</h3>
            <p>
                <strong>{target}</strong>
                <span class="muted">{format!(" · {target_title}")}</span>
                {asked_by.map(|a| view! { <span class="muted">{a}</span> })}
            </p>
            <p class="muted small">"Submitted "<Time ms=created_at />{format!(" · {}", relative(created_at, as_of))}</p>
            {(!justification.is_empty()).then(|| view! { <blockquote>{justification}</blockquote> })}
            <ApprovalSchedule is_extension start_at end_at period />
            {(!answers.is_empty()).then(|| view! {
                <dl class="answers">
                    {answers.into_iter().map(|(q, a)| view! { <dt>{q}</dt><dd>{a}</dd> }).collect_view()}
                </dl>
            })}
            <p class="small"><strong>"Grants: "</strong>{grants}</p>
            <p class="small"><strong>"Already has: "</strong>{has}</p>
            {sod_warning.map(|w| view! { <p class="notice warn" role="alert">{w}</p> })}
            <ActionForm action=decide attr:class="form decide">
                <input type="hidden" name="request_id" value=request_id />
                <label for=jid_for>{if justification_required { "Reason (required)" } else { "Reason (optional)" }}</label>
                <textarea id=jid name="justification" rows="2" required=justification_required></textarea>
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
fn ApprovalSchedule(
    is_extension: bool,
    start_at: Option<Millis>,
    end_at: Option<Millis>,
    period: String,
) -> impl IntoView {
    if is_extension {
        return view! {
            <p class="small schedule"><strong>"New end: "</strong>{period}</p>
        }
        .into_any();
    }
    let start = match start_at {
        Some(t) => view! { <Time ms=t /> }.into_any(),
        None => "when approved".into_any(),
    };
    let end = match end_at {
        Some(t) => view! { <Time ms=t />" (chosen by the requestor)" }.into_any(),
        None => period.into_any(),
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

/// Out of office: the deputy who decides while the approver is away (set, or ended), and the
/// people the approver stands in for.
#[component]
fn OutOfOffice(
    away: Resource<Result<DeputyPanel, crate::ui::error::AppError>>,
    set_deputy: ServerAction<SetDeputy>,
    end_deputy: ServerAction<EndDeputy>,
) -> impl IntoView {
    view! {
        <section class="panel" aria-labelledby="away-h">
            <h2 id="away-h">"Out of office"</h2>
            <Suspense fallback=|| ()>
                {loaded(away, move |r| match r {
                    Ok(panel) => view! {
                        {match panel.own.clone() {
                            Some(d) => view! {
                                <p id="deputy-now">
                                    {if d.starts_at <= panel.now { "You are away: " } else { "You will be away: " }}
                                    <strong>{d.deputy.clone()}</strong>" ("{d.deputy_email.clone()}") decides for you from "
                                    <Time ms=d.starts_at />" until "<Time ms=d.ends_at />
                                    ". New requests and stages that come to you go to them as well."
                                </p>
                                <ActionForm action=end_deputy attr:class="inline">
                                    <input type="hidden" name="deputy_id" value=d.id />
                                    <button type="submit" class="btn-secondary">"End it now"</button>
                                </ActionForm>
                            }.into_any(),
                            None => view! { <p class="muted">"No deputy: requests come to you alone."</p> }.into_any(),
                        }}
                        {(!panel.standing_in.is_empty()).then(|| view! {
                            <ul id="standing-in">
                                {panel.standing_in.iter().map(|d| view! {
                                    <li>"You decide for "<strong>{d.person.clone()}</strong>" from "<Time ms=d.starts_at />" until "<Time ms=d.ends_at /></li>
                                }).collect_view()}
                            </ul>
                        })}
                        <ActionForm action=set_deputy attr:class="form" attr:id="deputy-form">
                            <label for="deputy">"Deputy (their email)"</label>
                            <input id="deputy" name="deputy" type="email" required=true autocomplete="off" />
                            <label for="deputy-from">"From (empty: now)"</label>
                            <input id="deputy-from" name="from" type="date" />
                            <label for="deputy-until">"Until (the end of that day, UTC)"</label>
                            <input id="deputy-until" name="until" type="date" required=true />
                            <p><button type="submit" class="btn-secondary">"Name a deputy"</button></p>
                        </ActionForm>
                    }.into_any(),
                    Err(e) => view! { <ErrorPanel error=e /> }.into_any(),
                })}
            </Suspense>
        </section>
    }
}
