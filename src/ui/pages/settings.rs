//! Your settings (`/settings`): what you are emailed and in which time zone, and the way to
//! API tokens. Their own page, not a panel of My Access: the time-zone list alone is some 400
//! options, which My Access made and sent on every visit.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::ui::api::*;
use crate::ui::components::*;
use crate::views::*;

#[component]
pub fn Settings() -> impl IntoView {
    view! {
        <Title text="Your settings" />
        <SignedIn>
            <SettingsBody />
        </SignedIn>
    }
}

#[component]
fn SettingsBody() -> impl IntoView {
    let save_email = ServerAction::<SaveEmailSettings>::new();
    let email = Resource::new(move || save_email.version().get(), |_| email_settings());
    let latest = latest_of(vec![save_email.value().into()]);
    view! {
        <h1>"Your settings"</h1>
        <Notices latest flash=flash() />
        <EmailPanel email save_email />
    }
}

/// What the person is emailed about, and the optional emails turned on or off.
#[component]
fn EmailPanel(
    email: Resource<Result<EmailChoices, crate::ui::error::AppError>>,
    save_email: ServerAction<SaveEmailSettings>,
) -> impl IntoView {
    view! {
        <section class="panel" aria-labelledby="email-h">
            <h2 id="email-h">"Email"</h2>
            <Suspense fallback=|| ()>
                {loaded(email, move |r| match r {
                    Ok(settings) => view! {
                        {(!settings.sends).then(|| view! {
                            <p class="muted">"This portal sends no email yet (no mail server is set up). What you choose here applies once it does."</p>
                        })}
                        <p>"You are always emailed what needs you or changes your access: a request waiting for your decision, the decision on yours, access that could not be delivered, and access that ended."</p>
                        <ActionForm action=save_email attr:class="form" attr:id="email-settings">
                            <label class="check">
                                <input type="checkbox" name="optional" value="on" checked=settings.optional />
                                " Also email me when a stage of my request is approved and when my access is ready"
                            </label>
                            <label class="check">
                                <input type="checkbox" name="digest" value="on" checked=settings.digest />
                                " Send me a daily digest of the decisions waiting for me (mornings at 07:00, my time)"
                            </label>
                            <TimeZoneField chosen=settings.time_zone.clone() provider=settings.provider_time_zone.clone() />
                            <p><button type="submit" class="btn-secondary">"Save email settings"</button></p>
                        </ActionForm>
                    }.into_any(),
                    Err(e) => view! { <ErrorPanel error=e /> }.into_any(),
                })}
            </Suspense>
        </section>
        <section class="panel" aria-labelledby="scripts-h">
            <h2 id="scripts-h">"Scripts and tools"</h2>
            <p>"Tools can ask for access and decide as you through the REST API, with a token of yours. "
                <a class="btn-secondary" href="/tokens">"API tokens"</a>
            </p>
        </section>
    }
}

/// The time zone emails show times in: automatic (the sign-in provider's, else UTC) or one
/// the person chose, grouped by region.
#[component]
fn TimeZoneField(chosen: Option<String>, provider: Option<String>) -> impl IntoView {
    let automatic = match &provider {
        Some(z) => format!("Automatic: {z}, as your sign-in provider says"),
        None => "Automatic: UTC (your sign-in provider gives no time zone)".to_owned(),
    };
    let in_use = chosen.clone().or(provider);
    // A chosen zone the list does not have (an old name) is offered too, so that it shows.
    let extra = chosen.clone().filter(|z| crate::views::time_zones().all(|t| t != z));
    let mut regions: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
    let mut plain = Vec::new();
    for name in crate::views::time_zones() {
        match name.split_once('/') {
            None => plain.push(name),
            Some((region, _)) => match regions.last_mut() {
                Some((r, names)) if *r == region => names.push(name),
                _ => regions.push((region, vec![name])),
            },
        }
    }
    let option = move |name: &'static str, label: String, chosen: &Option<String>| {
        view! { <option value=name selected=chosen.as_deref() == Some(name)>{label}</option> }
    };
    // With JavaScript: the browser's own zone, offered when it is not the one in use.
    let browser = RwSignal::new(None::<&'static str>);
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| {
        let format = js_sys::Intl::DateTimeFormat::new(&js_sys::Array::new(), &js_sys::Object::new());
        let zone =
            js_sys::Reflect::get(&format.resolved_options(), &"timeZone".into()).ok().and_then(|v| v.as_string());
        browser.set(zone.as_deref().and_then(crate::views::listed_time_zone));
    });
    let select = NodeRef::<leptos::html::Select>::new();
    view! {
        <label class="field">
            <span>"Time zone for the times in my emails"</span>
            <select name="time_zone" node_ref=select>
                <option value=crate::views::AUTOMATIC_TIME_ZONE selected=chosen.is_none()>{automatic}</option>
                {extra.map(|z| view! { <option value=z.clone() selected=true>{z.clone()}</option> })}
                {plain.into_iter().map(|name| option(name, name.to_owned(), &chosen)).collect_view()}
                {regions.into_iter().map(|(region, names)| {
                    let chosen = chosen.clone();
                    view! {
                        <optgroup label=region>
                            {names.into_iter().map(|name| {
                                let city = name.split_once('/').map_or(name, |(_, c)| c).replace('_', " ");
                                option(name, city, &chosen)
                            }).collect_view()}
                        </optgroup>
                    }
                }).collect_view()}
            </select>
        </label>
        <p class="muted small" aria-live="polite">
            {move || browser.get().filter(|z| in_use.as_deref() != Some(*z)).map(|zone| view! {
                "This browser is set to " {zone} ". "
                <button type="button" class="btn-link" on:click=move |_| {
                    if let Some(select) = select.get() {
                        select.set_value(zone);
                        let _ = select.focus();
                    }
                }>"Choose it"</button>
            })}
        </p>
    }
}
