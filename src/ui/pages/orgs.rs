//! Connected organizations (`/admin/orgs`, administrators): each one's name, email domain and
//! state, its internal and external sponsors, and a new one. Plain forms throughout.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::ui::api::*;
use crate::ui::components::*;
use crate::ui::error::AppError;
use crate::views::*;

#[component]
pub fn Orgs() -> impl IntoView {
    view! {
        <Title text="Connected organizations" />
        <SignedIn>
            <OrgsBody />
        </SignedIn>
    }
}

#[derive(Clone, Copy)]
struct Actions {
    update: ServerAction<UpdateOrg>,
    lifecycle: ServerAction<SetGuestLifecycle>,
    add: ServerAction<AddSponsor>,
    remove: ServerAction<RemoveSponsor>,
    flash: Flash,
}

#[component]
fn OrgsBody() -> impl IntoView {
    let create = ServerAction::<CreateOrg>::new();
    let (update, add, remove) =
        (ServerAction::<UpdateOrg>::new(), ServerAction::<AddSponsor>::new(), ServerAction::<RemoveSponsor>::new());
    let lifecycle = ServerAction::<SetGuestLifecycle>::new();
    let orgs = Resource::new(
        move || {
            (
                create.version().get(),
                update.version().get(),
                add.version().get(),
                remove.version().get(),
                lifecycle.version().get(),
            )
        },
        |_| load_orgs(),
    );
    let latest = latest_of(vec![
        create.value().into(),
        update.value().into(),
        add.value().into(),
        remove.value().into(),
        lifecycle.value().into(),
    ]);
    let actions = Actions { update, lifecycle, add, remove, flash: flash() };
    // The new-organization form shows only its own answers by its fields (the banner above
    // shows every answer).
    let created: Signal<Option<Result<Notice, AppError>>> = create.value().into();
    view! {
        <p class="crumbs"><a href="/admin">"Admin"</a>" / Connected organizations"</p>
        <h1>"Connected organizations"</h1>
        <p class="lead">"Partners whose people may sign in as guests and ask for what policies open to them, while their organization is configured."</p>
        <Notices latest flash=actions.flash />
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {loaded(orgs, move |r| match r {
                Ok(list) => view! {
                    {if list.is_empty() { Some(view! { <p class="empty">"No connected organization yet."</p> }) } else { None }}
                    {list.into_iter().map(|o| view! { <OrgPanel o actions /> }).collect_view()}
                    <section class="panel" aria-labelledby="new-org-h">
                        <h2 id="new-org-h">"New connected organization"</h2>
                        <ActionForm action=create attr:class="form" attr:id="new-org">
                            <label for="org-name">"Name"</label>
                            <input type="text" id="org-name" name="name" required maxlength="200" />
                            <FieldError latest=created flash=actions.flash field="name" />
                            <label for="org-domain">"Email domain"</label>
                            <input type="text" id="org-domain" name="domain" required placeholder="partner.example" />
                            <FieldError latest=created flash=actions.flash field="domain" />
                            <label class="check"><input type="checkbox" name="configured" checked=true />" Configured: its people may sign in and request"</label>
                            <p><button type="submit" class="btn">"Add organization"</button></p>
                        </ActionForm>
                    </section>
                }.into_any(),
                Err(e) => view! { <ErrorPanel error=e /> }.into_any(),
            })}
        </Suspense>
    }
}

#[component]
fn OrgPanel(o: ConnectedOrg, actions: Actions) -> impl IntoView {
    let Actions { update, lifecycle, add, remove, .. } = actions;
    let (block, removal) = (o.block_after_days, o.remove_after_days);
    let heading = format!("org-{}-h", o.id);
    let labelled = heading.clone();
    let org_id = o.id;
    view! {
        <section class="panel" aria-labelledby=labelled id=format!("org-{}", o.id)>
            <h2 id=heading>{o.name.clone()}</h2>
            <p class="tags">
                <span class="tag">{if o.configured { "Configured" } else { "Proposed" }}</span>
                <span class="tag">{if o.guests == 1 { "1 guest".to_owned() } else { format!("{} guests", o.guests) }}</span>
            </p>
            <ActionForm action=update attr:class="filters">
                <input type="hidden" name="org_id" value=org_id />
                <label class="field"><span>"Name"</span><input type="text" name="name" value=o.name.clone() required maxlength="200" /></label>
                <label class="field"><span>"Email domain"</span><input type="text" name="domain" value=o.domain.clone() required /></label>
                <label class="check"><input type="checkbox" name="configured" checked=o.configured />" Configured"</label>
                <button type="submit" class="btn-secondary">"Save"</button>
            </ActionForm>
            <h3>"When a guest's access ends"</h3>
            <p class="muted small">{match (block, removal) {
                (None, None) => "Guests keep their account and may sign in (and ask again) however long they hold nothing.".to_owned(),
                (Some(b), None) => format!("Blocked from signing in {b} days after their last access ends; never removed."),
                (None, Some(r)) => format!("Removed {r} days after their last access ends."),
                (Some(b), Some(r)) => format!("Blocked from signing in {b} days after their last access ends, removed {r} days after that."),
            }}</p>
            <ActionForm action=lifecycle attr:class="filters">
                <input type="hidden" name="org_id" value=org_id />
                <label class="field"><span>"Block sign-in after (days; empty: never)"</span>
                    <input type="number" min="1" name="block_after_days" value=block.map(|d| d.to_string()).unwrap_or_default() /></label>
                <label class="field"><span>"Then remove after (days; empty: never)"</span>
                    <input type="number" min="1" name="remove_after_days" value=removal.map(|d| d.to_string()).unwrap_or_default() /></label>
                <button type="submit" class="btn-secondary">"Save"</button>
            </ActionForm>
            <h3>"Sponsors"</h3>
            {if o.sponsors.is_empty() {
                view! { <p class="muted small">"None yet: guests' requests that need a sponsor have nobody to approve them."</p> }.into_any()
            } else {
                view! {
                    <ul class="plain">
                        {o.sponsors.into_iter().map(|s| view! {
                            <li>
                                {s.name}" "<span class="muted small">{format!("{} · {}", s.email, if s.external { "external" } else { "internal" })}</span>
                                <ActionForm action=remove attr:class="inline">
                                    <input type="hidden" name="org_id" value=org_id />
                                    <input type="hidden" name="user_id" value=s.user_id />
                                    <button type="submit" class="btn-link">"Remove"</button>
                                </ActionForm>
                            </li>
                        }).collect_view()}
                    </ul>
                }.into_any()
            }}
            <ActionForm action=add attr:class="filters">
                <input type="hidden" name="org_id" value=org_id />
                <PersonPicker name="person" label="Sponsor" />
                <label class="field">
                    <span>"Kind"</span>
                    <select name="kind">
                        <option value="internal">"Internal (one of ours)"</option>
                        <option value="external">"External (one of theirs)"</option>
                    </select>
                </label>
                <button type="submit" class="btn-secondary">"Add sponsor"</button>
            </ActionForm>
        </section>
    }
}
