//! A package's page (`/packages/:id`) and its request form.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

use crate::ui::api::*;
use crate::ui::components::*;
use crate::ui::error::AppError;
use crate::views::*;

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
            {loaded(detail, move |r| match r {
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
