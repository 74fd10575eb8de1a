//! Access reviews: "My reviews" (`/reviews`), where reviewers answer keep / remove / don't
//! know for each person's access, one by one or several at once; and the reviews' progress
//! for their owners (`/admin/reviews`), where they end one early or apply its results.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::ui::api::*;
use crate::ui::components::*;
use crate::views::*;

#[component]
pub fn MyReviews() -> impl IntoView {
    view! {
        <Title text="My reviews" />
        <SignedIn>
            <MyReviewsBody />
        </SignedIn>
    }
}

fn decision_label(word: &str) -> &'static str {
    match word {
        "keep" => "Keep",
        "remove" => "Remove",
        _ => "Don't know",
    }
}

#[component]
fn MyReviewsBody() -> impl IntoView {
    let query = use_query_map();
    let after = move || query.read().get("after");
    let answer = ServerAction::<AnswerReview>::new();
    let items = Resource::new(move || (answer.version().get(), after()), |(_, a)| my_reviews(a));
    view! {
        <h1>"My reviews"</h1>
        <p class="lead">"Does each person still need this access? Your answers apply when the review ends."</p>
        <Notices latest=answer.value() flash=flash() />
        <section class="panel" aria-labelledby="review-items-h">
            <h2 id="review-items-h">"Access to review"</h2>
            <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {loaded(items, move |r| match r {
                    Ok(page) if page.items.is_empty() => view! { <p class="empty">"Nothing to review."</p> }.into_any(),
                    Ok(page) => view! {
                        <ActionForm action=answer attr:id="review-bulk" attr:class="form bulk">
                            <p class="small muted">"Tick people below to answer for several at once."</p>
                            <label for="bulk-review-justification">"Reason for all selected"</label>
                            <textarea id="bulk-review-justification" name="justification" rows="2"></textarea>
                            <div class="actions">
                                <button type="submit" name="decision" value="keep" class="btn">"Keep selected"</button>
                                <button type="submit" name="decision" value="remove" class="btn-danger">"Remove selected"</button>
                                <button type="submit" name="decision" value="dont_know" class="btn-secondary">"Don't know"</button>
                            </div>
                        </ActionForm>
                        <ul class="approvals" id="review-items">
                            {page.items.into_iter().enumerate().map(|(index, item)| view! { <ReviewCard item index answer as_of=page.as_of /> }).collect_view()}
                        </ul>
                        {page.next.map(|n| view! { <p><a class="btn-secondary" href=format!("/reviews?after={n}")>"More →"</a></p> })}
                    }.into_any(),
                    Err(e) => view! { <ErrorPanel error=e /> }.into_any(),
                })}
            </Suspense>
        </section>
    }
}

#[component]
fn ReviewCard(item: ReviewItemView, index: usize, answer: ServerAction<AnswerReview>, as_of: i64) -> impl IntoView {
    let jid = format!("review-justification-{}", item.id);
    let select_id = format!("review-select-{}", item.id);
    let select_for = select_id.clone();
    let remove = item.recommendation == "remove";
    let who = if item.own { "your own access".to_owned() } else { item.person.clone() };
    view! {
        <li class="approval card" id=format!("review-item-{}", item.id)>
            <div class="card-top">
                <label class="select" for=select_for>
                    <input type="checkbox" id=select_id form="review-bulk" name=format!("item_ids[{index}]") value=item.id />
                    <span class="sr-only">{format!("Select {} for {}", who, item.package)}</span>
                </label>
                <span class="muted small">"Ends "<Time ms=item.ends_at />{format!(" · {}", relative(item.ends_at, as_of))}</span>
            </div>
            <h3>{item.package.clone()}</h3>
            <p>
                <strong>{if item.own { "You".to_owned() } else { item.person.clone() }}</strong>
                <span class="muted">{format!(" · {}", item.email)}</span>
                {(!item.department.is_empty()).then(|| view! { <span class="muted">{format!(" · {}", item.department)}</span> })}
            </p>
            <p class="muted small">"Has had it since "<Time ms=item.given_at /></p>
            <p class=if remove { "notice warn recommendation" } else { "notice ok recommendation" }>
                <strong>{if remove { "Recommended: remove" } else { "Recommended: keep" }}</strong>
                {format!(" — {}", item.recommendation_reason)}
            </p>
            {item.decision.clone().map(|d| view! {
                <p class="small answered">
                    <span class=format!("state state-{d}")>{decision_label(&d)}</span>
                    {item.decided_by.clone().map(|b| format!(" — answered by {b}"))}
                    {(!item.justification.is_empty()).then(|| format!(": “{}”", item.justification))}
                </p>
            })}
            <ActionForm action=answer attr:class="form decide">
                <input type="hidden" name="item_ids[0]" value=item.id />
                <input type="hidden" name="seen" value=item.decision.clone().unwrap_or_default() />
                <label for=jid.clone()>"Reason (optional)"</label>
                <textarea id=jid name="justification" rows="2"></textarea>
                <div class="actions">
                    <button type="submit" name="decision" value="keep" class="btn">"Keep"</button>
                    <button type="submit" name="decision" value="remove" class="btn-danger">"Remove"</button>
                    <button type="submit" name="decision" value="dont_know" class="btn-secondary">"Don't know"</button>
                </div>
            </ActionForm>
        </li>
    }
}

#[component]
pub fn ReviewsAdmin() -> impl IntoView {
    view! {
        <Title text="Access reviews" />
        <SignedIn>
            <ReviewsAdminBody />
        </SignedIn>
    }
}

#[component]
fn ReviewsAdminBody() -> impl IntoView {
    let query = use_query_map();
    let before = move || query.read().get("before");
    let end = ServerAction::<EndReview>::new();
    let apply = ServerAction::<ApplyReview>::new();
    let list =
        Resource::new(move || (end.version().get(), apply.version().get(), before()), |(_, _, b)| load_reviews(b));
    let latest = latest_of(vec![end.value().into(), apply.value().into()]);
    view! {
        <p class="crumbs"><a href="/admin">"Admin"</a>" / Access reviews"</p>
        <h1>"Access reviews"</h1>
        <p class="lead">"Each policy that reviews its access starts a review every period. Follow their progress here; end one early, or apply its results when they do not apply automatically."</p>
        <Notices latest flash=flash() />
        <section class="panel" aria-labelledby="reviews-h">
            <h2 id="reviews-h">"Reviews"</h2>
            <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {loaded(list, move |r| match r {
                    Ok(page) if page.items.is_empty() => view! { <p class="empty">"No reviews yet. Turn them on in a policy's Lifecycle step."</p> }.into_any(),
                    Ok(page) => view! {
                        <table class="table" id="reviews">
                            <thead><tr><th>"Package · policy"</th><th>"Period"</th><th>"Answered"</th><th>"Removing"</th><th>"State"</th><th><span class="sr-only">"Actions"</span></th></tr></thead>
                            <tbody>
                                {page.items.into_iter().map(|v| view! { <ReviewRow v end apply /> }).collect_view()}
                            </tbody>
                        </table>
                        {page.next.map(|n| view! { <p><a class="btn-secondary" href=format!("/admin/reviews?before={n}")>"Older reviews →"</a></p> })}
                    }.into_any(),
                    Err(e) => view! { <ErrorPanel error=e /> }.into_any(),
                })}
            </Suspense>
        </section>
    }
}

#[component]
fn ReviewRow(v: ReviewView, end: ServerAction<EndReview>, apply: ServerAction<ApplyReview>) -> impl IntoView {
    let percent = if v.items > 0 { v.decided * 100 / v.items } else { 100 };
    let state = match v.state.as_str() {
        "running" => "Running".to_owned(),
        "ended" if v.apply_automatically => "Ended, applying".to_owned(),
        "ended" => "Ended: results to apply".to_owned(),
        _ => "Applied".to_owned(),
    };
    let removing = if v.state == "running" { "—".to_owned() } else { format!("{} ({} done)", v.removing, v.removed) };
    view! {
        <tr id=format!("review-{}", v.id)>
            <td><a href=format!("/admin/packages/{}", v.package_id)>{v.package.clone()}</a><span class="muted small block">{v.policy.clone()}</span></td>
            <td><Time ms=v.starts_at />" → "<Time ms=v.ends_at /></td>
            <td>
                <progress max="100" value=percent aria-label=format!("{percent}% answered")></progress>
                <span class="small">{format!(" {} of {}", v.decided, v.items)}</span>
            </td>
            <td>{removing}</td>
            <td><span class=format!("state state-{}", v.state)>{state}</span><span class="muted small block">{format!("no answer: {}", v.default_decision)}</span></td>
            <td class="row-actions">
                {(v.may_act && v.state == "running").then(|| view! {
                    <ActionForm action=end attr:class="inline">
                        <input type="hidden" name="review_id" value=v.id />
                        <button type="submit" class="btn-secondary">"End now"</button>
                    </ActionForm>
                })}
                {(v.may_act && v.state == "ended").then(|| view! {
                    <ActionForm action=apply attr:class="inline">
                        <input type="hidden" name="review_id" value=v.id />
                        <button type="submit" class="btn">"Apply results"</button>
                    </ActionForm>
                })}
            </td>
        </tr>
    }
}
