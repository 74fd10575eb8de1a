//! The access package builder (`/admin/drafts/:draft/:step`): Basics → Resource roles → Who
//! can request → Approval → Lifecycle → Questions → Review and create. Every step is one plain
//! form: Back, Next and the steps' list are its submit buttons, so each move saves the step on
//! the server first (a reload, a second tab or a browser without JavaScript loses nothing).
//! The fields are named `f[…]` as `domain::draft` reads and writes them.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

use crate::states::{DraftMode, WizardStep};
use crate::ui::api::*;
use crate::ui::components::*;
use crate::ui::error::AppError;
use crate::views::*;

#[component]
pub fn Builder() -> impl IntoView {
    view! {
        <SignedIn>
            <BuilderBody />
        </SignedIn>
    }
}

type Latest = Signal<Option<Result<Notice, AppError>>>;

/// What every part of a step needs: the saved values and where messages come from.
#[derive(Clone)]
struct Ctx {
    values: std::sync::Arc<std::collections::BTreeMap<String, String>>,
    latest: Latest,
    flash: Flash,
}

impl Ctx {
    fn val(&self, key: &str) -> String {
        self.values.get(key).cloned().unwrap_or_default()
    }

    fn on(&self, key: &str) -> bool {
        self.val(key) == "on"
    }
}

#[component]
fn BuilderBody() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.read().get("draft").and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
    let step = move || params.read().get("step").and_then(|s| WizardStep::parse(&s)).unwrap_or(WizardStep::Basics);
    let save = ServerAction::<SaveDraftStep>::new();
    let finish = ServerAction::<FinishPackageDraft>::new();
    let discard = ServerAction::<DiscardPackageDraft>::new();
    let draft = Resource::new(move || (id(), step()), |(id, step)| load_package_draft(id, Some(step)));
    // A step saved is answered by the next step itself; only a refused save is shown.
    let refused = Signal::derive(move || save.value().get().filter(|r| r.is_err()));
    let latest = latest_of(vec![refused, finish.value().into(), discard.value().into()]);
    // Taken again at each step: an outcome kept for this step (a problem found at Create)
    // waits in the session for it.
    let flash: Flash = Resource::new(move || (id(), step()), |_| take_notice());
    view! {
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {loaded(draft, move |r| match r {
                Ok(d) => view! { <Step d save finish discard latest flash /> }.into_any(),
                Err(e) => view! { <ErrorPanel error=e /> }.into_any(),
            })}
        </Suspense>
    }
}

#[component]
fn Step(
    d: DraftView,
    save: ServerAction<SaveDraftStep>,
    finish: ServerAction<FinishPackageDraft>,
    discard: ServerAction<DiscardPackageDraft>,
    latest: Latest,
    flash: Flash,
) -> impl IntoView {
    let ctx = Ctx { values: std::sync::Arc::new(d.values.clone()), latest, flash };
    let step = d.step;
    let title = match d.mode {
        DraftMode::NewPackage => "New access package".to_owned(),
        DraftMode::NewPolicy => format!("New policy for {}", ctx.val("name")),
        DraftMode::Edit => format!("Edit {}", ctx.val("name")),
    };
    let body = match step {
        WizardStep::Basics => view! { <Basics ctx=ctx.clone() mode=d.mode /> }.into_any(),
        WizardStep::Roles => view! { <Roles ctx=ctx.clone() d=d.clone() /> }.into_any(),
        WizardStep::Requestors => view! { <Requestors ctx=ctx.clone() d=d.clone() /> }.into_any(),
        WizardStep::Approval => view! { <Approval ctx=ctx.clone() groups=d.groups.clone() /> }.into_any(),
        WizardStep::Lifecycle => view! { <Lifecycle ctx=ctx.clone() /> }.into_any(),
        WizardStep::Questions => view! { <Questions ctx=ctx.clone() /> }.into_any(),
        WizardStep::Review => view! { <Review d=d.clone() /> }.into_any(),
    };
    let create = match d.mode {
        DraftMode::NewPackage => "Create access package",
        DraftMode::NewPolicy => "Add policy",
        DraftMode::Edit => "Save changes",
    };
    view! {
        <Title text=format!("{title} · {}", step.label()) />
        <p class="crumbs">
            <a href="/admin">"Admin"</a>" / "<a href="/admin/catalogs">"Catalogs"</a>" / "
            <a href=format!("/admin/catalogs/{}", d.catalog_id)>{d.catalog.clone()}</a>
        </p>
        <h1>{title}</h1>
        <p class="lead">{format!("Step {} of {}: {}", step.index() + 1, WizardStep::ALL.len(), step.label())}</p>
        <Notices latest flash />
        <ActionForm action=save attr:class="form wizard" attr:id="wizard-step">
            <input type="hidden" name="draft_id" value=d.id />
            <input type="hidden" name="step" value=step.as_str() />
            <input type="hidden" name="f[_]" value="1" />
            <nav class="wizard-steps" aria-label="Steps">
                <ol>
                    {WizardStep::ALL.iter().map(|s| {
                        let current = *s == step;
                        view! {
                            <li>
                                <button type="submit" name="go" value=format!("to:{s}") class=if current { "wizard-step current" } else { "wizard-step" }
                                    aria-current=current.then_some("step")>
                                    {format!("{}. {}", s.index() + 1, s.label())}
                                </button>
                            </li>
                        }
                    }).collect_view()}
                </ol>
            </nav>
            {body}
            <p class="wizard-moves">
                {(step != WizardStep::Basics).then(|| view! { <button type="submit" name="go" value="back" class="btn-secondary">"Back"</button> })}
                {(step != WizardStep::Review).then(|| view! { <button type="submit" name="go" value="next" class="btn" id="wizard-next">"Next"</button> })}
            </p>
        </ActionForm>
        <FieldError latest flash field="go" />
        {(step == WizardStep::Review).then(|| view! {
            <ActionForm action=finish attr:class="inline" attr:id="wizard-create">
                <input type="hidden" name="draft_id" value=d.id />
                <input type="hidden" name="seen" value=d.updated_at />
                <input type="hidden" name="what_if" value=d.what_if.as_ref().map(|w| w.fingerprint.clone()).unwrap_or_default() />
                <button type="submit" class="btn">{create}</button>
            </ActionForm>
        })}
        <section class="panel quiet" aria-labelledby="discard-h">
            <h2 id="discard-h" class="small">"Not now?"</h2>
            <p class="muted small">"This draft stays on the catalog's page until you come back to it."</p>
            <ActionForm action=discard attr:class="inline" attr:id="wizard-discard">
                <input type="hidden" name="draft_id" value=d.id />
                <button type="submit" class="btn-secondary">"Discard draft"</button>
            </ActionForm>
        </section>
    }
}

/// The message about one field, under it.
#[component]
fn Problem(ctx: Ctx, field: String) -> impl IntoView {
    view! { <FieldError latest=ctx.latest flash=ctx.flash field /> }
}

/// People named by email, with the finder ([`PeopleList`]).
#[component]
fn People(ctx: Ctx, key: String, label: &'static str) -> impl IntoView {
    view! { <PeopleList name=format!("f[{key}]") id=format!("f-{key}") label value=ctx.val(&key) /> }
}

/// A one-line text (or number, or date) field.
#[component]
fn Text(
    ctx: Ctx,
    key: String,
    label: &'static str,
    #[prop(default = "text")] kind: &'static str,
    #[prop(optional)] hint: &'static str,
) -> impl IntoView {
    let id = format!("f-{key}");
    view! {
        <label for=id.clone()>{label}</label>
        <input type=kind id=id name=format!("f[{key}]") value=ctx.val(&key) />
        {(!hint.is_empty()).then(|| view! { <span class="muted small block">{hint}</span> })}
        <Problem ctx field=key />
    }
}

#[component]
fn Check(ctx: Ctx, key: String, label: String) -> impl IntoView {
    view! {
        <label class="check"><input type="checkbox" name=format!("f[{key}]") checked=ctx.on(&key) />" "{label}</label>
    }
}

/// A drop-down of (word, label).
#[component]
fn Select(ctx: Ctx, key: String, label: &'static str, options: Vec<(&'static str, &'static str)>) -> impl IntoView {
    let id = format!("f-{key}");
    let chosen = ctx.val(&key);
    view! {
        <label for=id.clone()>{label}</label>
        <select id=id name=format!("f[{key}]")>
            {options.into_iter().map(|(w, l)| view! { <option value=w selected=chosen == w>{l}</option> }).collect_view()}
        </select>
        <Problem ctx field=key />
    }
}

/// Approvers the form cannot show (kept from the policy being edited), with a box to drop them.
#[component]
fn Kept(ctx: Ctx, prefix: String) -> impl IntoView {
    let json = ctx.val(&format!("{prefix}_kept"));
    (!json.is_empty()).then(|| {
        let label = format!("Also keep — {}", ctx.val(&format!("{prefix}_kept_text")));
        view! {
            <input type="hidden" name=format!("f[{prefix}_kept]") value=json />
            <Check ctx=ctx.clone() key=format!("{prefix}_keep") label />
            <Problem ctx field=format!("{prefix}_kept") />
        }
    })
}

/// Boxes to tick, one per choice, named `{prefix}{id}`.
#[component]
fn Ticks(ctx: Ctx, prefix: &'static str, legend: &'static str, choices: Vec<Choice>) -> impl IntoView {
    view! {
        <fieldset>
            <legend>{legend}</legend>
            {if choices.is_empty() {
                view! { <p class="empty">"None to pick from."</p> }.into_any()
            } else {
                choices.into_iter().map(|c| {
                    let key = format!("{prefix}{}", c.id);
                    let label = if c.detail.is_empty() { c.name } else { format!("{} ({})", c.name, c.detail) };
                    view! { <Check ctx=ctx.clone() key label /> }
                }).collect_view().into_any()
            }}
        </fieldset>
    }
}

#[component]
fn Basics(ctx: Ctx, mode: DraftMode) -> impl IntoView {
    view! {
        {if mode == DraftMode::NewPolicy {
            view! { <p>"Package: "<strong>{ctx.val("name")}</strong></p> }.into_any()
        } else {
            view! {
                <Text ctx=ctx.clone() key="name".into() label="Package name" />
                <label for="f-description">"Description (what requesters read)"</label>
                <textarea id="f-description" name="f[description]" rows="3">{ctx.val("description")}</textarea>
                <Problem ctx=ctx.clone() field="description".into() />
                <Check ctx=ctx.clone() key="hidden".into() label="Hidden: not listed, requested by its link only".into() />
            }.into_any()
        }}
        <Text ctx=ctx.clone() key="policy_name".into() label="Policy name" hint="Who the policy is for, e.g. Employees, Contractors." />
        <label for="f-policy_description">"Policy description"</label>
        <textarea id="f-policy_description" name="f[policy_description]" rows="2">{ctx.val("policy_description")}</textarea>
        <Problem ctx field="policy_description".into() />
    }
}

#[component]
fn Roles(ctx: Ctx, d: DraftView) -> impl IntoView {
    if d.mode == DraftMode::NewPolicy {
        let chosen: Vec<String> =
            d.roles.iter().filter(|r| ctx.on(&format!("role_{}", r.id))).map(|r| r.name.clone()).collect();
        return view! {
            <p>"This package grants: "<strong>{chosen.join(", ")}</strong></p>
            <p class="muted small">"A new policy grants the package's resource roles; edit the package to change them."</p>
        }
        .into_any();
    }
    let edit = d.mode == DraftMode::Edit;
    let no_roles = d.roles.is_empty();
    view! {
        {no_roles.then(|| view! {
            <p class="notice err">"This catalog has no resources yet. "
                <a href=format!("/admin/catalogs/{}", d.catalog_id)>"Add one on the catalog's page"</a>", then come back: this draft waits."</p>
        })}
        {edit.then(|| view! {
            <input type="hidden" name="f[roles_shown]" value="on" />
            <p class="muted small">"People who hold this package get a role you add, and lose a role you take out unless another of their assignments gives it; the Review step says how many."</p>
        })}
        <Ticks ctx=ctx.clone() prefix="role_" legend="Resource roles this package grants" choices=d.roles.clone() />
        <Problem ctx=ctx.clone() field="roles".into() />
        <h2 class="small">"Separation of duties"</h2>
        <p class="muted small">"Someone holding one of these cannot request this package (and the other way round)."</p>
        {edit.then(|| view! { <input type="hidden" name="f[sod_shown]" value="on" /> })}
        <Ticks ctx=ctx.clone() prefix="sod_package_" legend="Incompatible access packages" choices=d.packages.clone() />
        <Ticks ctx prefix="sod_group_" legend="Incompatible groups" choices=d.groups.clone() />
    }
    .into_any()
}

const SCOPES: [(&str, &str); 5] = [
    ("none", "Nobody: only assigned directly by an administrator"),
    ("all_members", "All members (employees)"),
    ("specific", "Specific people or groups"),
    ("connected_orgs", "Guests of specific connected organizations"),
    ("all_externals", "All guests of configured connected organizations"),
];

#[component]
fn Requestors(ctx: Ctx, d: DraftView) -> impl IntoView {
    let scope = ctx.val("scope");
    view! {
        <fieldset>
            <legend>"Who can request"</legend>
            {SCOPES.iter().map(|(w, l)| view! {
                <label class="check"><input type="radio" name="f[scope]" value=*w checked=scope == *w />" "{*l}</label>
            }).collect_view()}
        </fieldset>
        <Problem ctx=ctx.clone() field="scope".into() />
        <People ctx=ctx.clone() key="people".into() label="Specific people (emails, separated by commas)" />
        <Problem ctx=ctx.clone() field="people".into() />
        <Ticks ctx=ctx.clone() prefix="group_" legend="Specific groups" choices=d.groups.clone() />
        <Ticks ctx=ctx.clone() prefix="org_" legend="Connected organizations" choices=d.orgs.clone() />
        <Problem ctx=ctx.clone() field="requestors".into() />
        <Problem ctx=ctx.clone() field="orgs".into() />
        <Check ctx=ctx.clone() key="justification_required".into() label="Requesters must say why".into() />
        <Check ctx=ctx.clone() key="on_behalf_allowed".into() label="Managers may request for their direct reports".into() />
        <h2 class="small">"Automatic assignment"</h2>
        <Text ctx key="auto_rule".into() label="Assign to everyone who matches (administrators; “who can request”: nobody)"
            hint="A rule over department, job_title, kind, org, email and groups, such as department == \"Sales\" && kind == \"member\". Empty: nobody is assigned automatically. The Review step shows who gains and loses access before you save." />
    }
}

const APPROVERS: [(&str, &str); 5] = [
    ("people", "Specific people"),
    ("group", "Members of a group"),
    ("manager", "The requester's manager"),
    ("catalog_owners", "The catalog's owners"),
    ("sponsors", "The requester's sponsors (guests)"),
];

#[component]
fn Approval(ctx: Ctx, groups: Vec<Choice>) -> impl IntoView {
    // With JavaScript, only the stages chosen are shown (effects run in the browser only;
    // without it every stage is there, and those beyond the number are ignored).
    let count = RwSignal::new(ctx.val("stages").parse::<usize>().unwrap_or(0));
    let hydrated = RwSignal::new(false);
    Effect::new(move |_| hydrated.set(true));
    view! {
        <label for="f-stages">"Approval stages"</label>
        <select id="f-stages" name="f[stages]" on:change=move |ev| count.set(event_target_value(&ev).parse().unwrap_or(0))>
            {[("0", "None: granted on request"), ("1", "One stage"), ("2", "Two stages"), ("3", "Three stages")]
                .into_iter()
                .map(|(w, l)| view! { <option value=w selected=ctx.val("stages") == w>{l}</option> })
                .collect_view()}
        </select>
        <Problem ctx=ctx.clone() field="stages".into() />
        <Problem ctx=ctx.clone() field="approval".into() />
        <p class="muted small">"A request waits at each stage in turn; nobody approves their own request."</p>
        {(1..=3).map(|i| {
            let k = |s: &str| format!("s{i}_{s}");
            let group = ctx.val(&k("group"));
            view! {
                <fieldset class="stage" style:display=move || { if hydrated.get() && i > count.get() { "none" } else { "" } }>
                    <legend>{format!("Stage {i}")}</legend>
                    <Select ctx=ctx.clone() key=k("approver") label="Approved by" options=APPROVERS.to_vec() />
                    <People ctx=ctx.clone() key=k("people") label="People (emails, for “specific people”)" />
                    <Problem ctx=ctx.clone() field=k("people") />
                    <label for=format!("f-{}", k("group"))>"Group (for “members of a group”)"</label>
                    <select id=format!("f-{}", k("group")) name=format!("f[{}]", k("group"))>
                        <option value="">"—"</option>
                        {groups.iter().map(|g| view! { <option value=g.id selected=group == g.id.to_string()>{g.name.clone()}</option> }).collect_view()}
                    </select>
                    <Problem ctx=ctx.clone() field=k("group") />
                    <Text ctx=ctx.clone() key=k("fallback") label="Fallback approvers (emails; when none of the above can decide)" />
                    <Text ctx=ctx.clone() key=k("timeout") label="Days to decide (1–14)" kind="number" />
                    <Text ctx=ctx.clone() key=k("remind") label="Remind the approvers after (days; empty: no reminder)" kind="number" />
                    <Select ctx=ctx.clone() key=k("on_timeout") label="If nobody decides in time"
                        options=vec![("expire", "The request expires"), ("escalate", "It goes to alternate approvers")] />
                    <Text ctx=ctx.clone() key=k("escalation") label="Alternate approvers (emails)" />
                    <Check ctx=ctx.clone() key=k("justification") label="Approvers must give a reason".into() />
                    <Kept ctx=ctx.clone() prefix=format!("s{i}") />
                </fieldset>
            }
        }).collect_view()}
    }
}

#[component]
fn Lifecycle(ctx: Ctx) -> impl IntoView {
    let expires = ctx.val("expires");
    let ends = [
        ("never", "Never"),
        ("on_date", "On a date"),
        ("after_days", "After a number of days"),
        ("after_hours", "After a number of hours"),
    ];
    view! {
        <fieldset>
            <legend>"Access ends"</legend>
            {ends.iter().map(|(w, l)| view! {
                <label class="check"><input type="radio" name="f[expires]" value=*w checked=expires == *w />" "{*l}</label>
            }).collect_view()}
        </fieldset>
        <Problem ctx=ctx.clone() field="expires".into() />
        <Problem ctx=ctx.clone() field="expiration".into() />
        <Text ctx=ctx.clone() key="exp_date".into() label="End date" kind="date" />
        <Text ctx=ctx.clone() key="exp_days".into() label="Days" kind="number" />
        <Text ctx=ctx.clone() key="exp_hours".into() label="Hours" kind="number" />
        <Check ctx=ctx.clone() key="schedule_allowed".into() label="Requesters may pick when access starts and ends".into() />
        <Text ctx=ctx.clone() key="max_lead_days".into() label="Longest lead time for a start, in days" kind="number" />
        <Check ctx=ctx.clone() key="extension_allowed".into() label="People may ask to extend their access".into() />
        <Problem ctx=ctx.clone() field="extension_allowed".into() />
        <Check ctx=ctx.clone() key="extension_needs_approval".into() label="An extension needs approval".into() />
        <h2 class="small">"Access reviews"</h2>
        <Select ctx=ctx.clone() key="review".into() label="Review access"
            options=vec![("off", "Off"), ("weekly", "Weekly"), ("monthly", "Monthly"), ("quarterly", "Quarterly"), ("annually", "Annually")] />
        <Select ctx=ctx.clone() key="review_by".into() label="Reviewed by"
            options=vec![("manager", "Their managers"), ("self", "The people themselves"), ("people", "Specific people")] />
        <People ctx=ctx.clone() key="review_people".into() label="Reviewers (emails, for “specific people”)" />
        <Problem ctx=ctx.clone() field="review_people".into() />
        <People ctx=ctx.clone() key="review_fallback".into() label="Who reviews for people without a manager (emails; none: the catalog's owners)" />
        <Problem ctx=ctx.clone() field="review_fallback".into() />
        <Kept ctx=ctx.clone() prefix="review".into() />
        <Text ctx=ctx.clone() key="review_starts".into() label="First review starts on (empty: with the calendar)" kind="date" />
        <Text ctx=ctx.clone() key="review_days".into() label="Days a review lasts" kind="number" />
        <Select ctx=ctx.clone() key="review_default".into() label="If a reviewer does not answer"
            options=vec![("keep", "Keep access"), ("remove", "Remove access"), ("recommendation", "Take the recommendation")] />
        <Check ctx key="review_auto".into() label="Apply the results automatically".into() />
    }
}

#[component]
fn Questions(ctx: Ctx) -> impl IntoView {
    let existing = (1..).take_while(|i| !ctx.val(&format!("q{i}_prompt")).is_empty()).count();
    let rows = (existing + 2).min(crate::views::MAX_QUESTIONS.max(existing));
    view! {
        <p class="muted small">"Asked of every requester. Leave a question empty to remove it; the numbers set the order."</p>
        <Problem ctx=ctx.clone() field="questions".into() />
        {(1..=rows).map(|i| {
            let k = |s: &str| format!("q{i}_{s}");
            view! {
                <fieldset class="question">
                    <legend>{format!("Question {i}")}</legend>
                    <input type="hidden" name=format!("f[{}]", k("id")) value=ctx.val(&k("id")) />
                    <Text ctx=ctx.clone() key=k("prompt") label="Question" />
                    <Select ctx=ctx.clone() key=k("kind") label="Answer" options=vec![("text", "Free text"), ("choice", "One of a list")] />
                    <label for=format!("f-{}", k("options"))>"Options (one per line, for a list)"</label>
                    <textarea id=format!("f-{}", k("options")) name=format!("f[{}]", k("options")) rows="2">{ctx.val(&k("options"))}</textarea>
                    <Problem ctx=ctx.clone() field=k("options") />
                    <Check ctx=ctx.clone() key=k("required") label="Required".into() />
                    <Check ctx=ctx.clone() key=k("multiline") label="A longer answer (several lines)".into() />
                    <Text ctx=ctx.clone() key=k("order") label="Position" kind="number" />
                </fieldset>
            }
        }).collect_view()}
    }
}

#[component]
fn Review(d: DraftView) -> impl IntoView {
    view! {
        <dl class="summary" id="wizard-summary">
            {d.summary.into_iter().map(|(what, how)| view! { <dt>{what}</dt><dd>{how}</dd> }).collect_view()}
        </dl>
        {d.what_if.map(|w| view! { <WhatIfPanel w /> })}
        {d.who_may_request.map(|w| view! { <WhatIfPanel w asking=true /> })}
        {(!d.impact.is_empty()).then(|| view! {
            <section class="panel" aria-labelledby="impact-h" id="wizard-impact">
                <h2 id="impact-h">"What saving does"</h2>
                <ul>{d.impact.into_iter().map(|line| view! { <li>{line}</li> }).collect_view()}</ul>
            </section>
        })}
    }
}

/// Who the policy's rule gives the package to, and takes it from, if saved now: counts and
/// the first names, then everyone.
/// `asking`: who could newly ask for the package, and who no longer could (a change of who
/// can request), rather than who a rule gives it to.
#[component]
fn WhatIfPanel(w: WhatIf, #[prop(optional)] asking: bool) -> impl IntoView {
    const FIRST: usize = 10;
    let list = |names: &[String]| {
        let first: Vec<String> = names.iter().take(FIRST).cloned().collect();
        let more = names.len().saturating_sub(FIRST);
        format!("{}{}", first.join(", "), if more > 0 { format!(" and {more} more") } else { String::new() })
    };
    let (gain_text, loss_text) = (list(&w.gains), list(&w.losses));
    let everyone = w.gains.len() > FIRST || w.losses.len() > FIRST;
    let id = if asking { "wizard-asking" } else { "wizard-whatif" }.to_owned();
    view! {
        <section class="panel" aria-labelledby=format!("{id}-h") id=id.clone()>
            <h2 id=format!("{id}-h")>{if asking { "Who can ask for it" } else { "Who gains and loses access" }}</h2>
            <p class="gains"><strong>{format!("{} {}", w.gains.len(), if asking { "could newly ask for it" } else { "gain it" })}</strong>{(!w.gains.is_empty()).then(|| format!(": {gain_text}"))}</p>
            <p class="losses"><strong>{format!("{} {}", w.losses.len(), if asking { "could no longer ask (what they hold stays)" } else { "lose it" })}</strong>{(!w.losses.is_empty()).then(|| format!(": {loss_text}"))}</p>
            {(!w.blocked.is_empty()).then(|| view! {
                <p id="whatif-blocked" class="notice warn">{format!("{} match but cannot have it: {}", w.blocked.len(), w.blocked.join("; "))}</p>
            })}
            {everyone.then(|| view! {
                <details>
                    <summary>"Everyone"</summary>
                    <h3 class="small">"Gain"</h3>
                    <ul class="plain all-gains">{w.gains.iter().map(|n| view! { <li>{n.clone()}</li> }).collect_view()}</ul>
                    <h3 class="small">"Lose"</h3>
                    <ul class="plain all-losses">{w.losses.iter().map(|n| view! { <li>{n.clone()}</li> }).collect_view()}</ul>
                </details>
            })}
            <p class="muted small">{if asking {
                "Computed now, changing nothing: saving changes who may ask, exactly so."
            } else {
                "Computed now, changing nothing: saving applies the rule, and these changes are made and audited one person at a time."
            }}</p>
        </section>
    }
}
