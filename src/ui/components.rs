//! Components and helpers the pages share: the signed-in gate, notices, errors, statuses.

use leptos::prelude::*;
use leptos::reactive::computed::ScopedFuture;
use leptos_router::components::Redirect;
use std::future::IntoFuture;

use crate::ui::api::*;
use crate::ui::error::AppError;
use crate::ui::pages::SignIn;
use crate::ui::{use_viewer, TzOffset};
use crate::views::*;

/// Shows its children to signed-in people; sends everyone else to the sign-in page (or, with
/// `sign_in_here`, shows the sign-in choices in place: the landing page does that).
///
/// The children are made once per request: inside one `Suspend` that awaits the viewer. Made
/// in a closure instead, the server made them up to three times (the boundary walks its
/// children to find their resources, then renders them), and every resource in them ran its
/// server function as often.
#[component]
pub fn SignedIn(children: ChildrenFn, #[prop(optional)] sign_in_here: bool) -> impl IntoView {
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
                        let back = crate::ui::current_path();
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

/// The view of a resource's value, as a `<Suspense>`'s child: made once per server render, and
/// made again in the browser each time the resource reloads.
///
/// On the server a boundary walks its children up to three times (to find their resources,
/// again once they are loaded, then to render), and a closure child runs on every walk:
/// `move || resource.get().map(…)` cloned the data and built every row's view twice for one
/// rendering. A `Suspend` that is the child itself runs once. In the browser the closure is
/// what makes the view follow the resource, so there it stays.
pub fn loaded<T, V, F>(resource: Resource<T>, make: F) -> impl IntoView
where
    T: Clone + Send + Sync + serde::Serialize + serde::de::DeserializeOwned + 'static,
    V: IntoView + 'static,
    F: Fn(T) -> V + Clone + Send + Sync + 'static,
{
    #[cfg(not(feature = "hydrate"))]
    {
        Suspend::new(async move { make(resource.await) })
    }
    #[cfg(feature = "hydrate")]
    {
        move || {
            let make = make.clone();
            Suspend::new(async move { make(resource.await) })
        }
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

/// Shows the latest action's outcome: from a hydrated form (the action's value) or, with
/// JavaScript off, from the session (`take_notice`).
/// The outcome of the last plain-form action (JavaScript off), read once from the session.
pub type Flash = Resource<Result<Option<Notice>, AppError>>;

pub fn flash() -> Flash {
    Resource::new(|| (), |_| take_notice())
}

#[component]
pub fn Notices(#[prop(into)] latest: Signal<Option<Result<Notice, AppError>>>, flash: Flash) -> impl IntoView {
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

pub fn latest_of(actions: Vec<Signal<Option<Result<Notice, AppError>>>>) -> Signal<Option<Result<Notice, AppError>>> {
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

/// Percent-encodes a query parameter's value.
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            b' ' => "+".to_owned(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub fn initials(name: &str) -> String {
    name.split_whitespace().filter_map(|w| w.chars().next()).take(2).collect()
}

/// A one-line result of an action: green for done, red for refused.
#[component]
pub fn NoticeBanner(notice: Notice) -> impl IntoView {
    let class = if notice.ok { "notice ok" } else { "notice err" };
    view! { <p class=class role=if notice.ok { "status" } else { "alert" }>{notice.text}</p> }
}

/// A Unix-millisecond time as a readable date and time at an offset from UTC (minutes).
pub fn format_time_at(ms: i64, offset_minutes: i32) -> String {
    let Some(offset) = chrono::FixedOffset::east_opt(offset_minutes * 60) else { return String::new() };
    let Some(t) = chrono::DateTime::from_timestamp_millis(ms) else { return String::new() };
    let zone = match offset_minutes {
        0 => "UTC".to_owned(),
        m if m % 60 == 0 => format!("UTC{:+}", m / 60),
        m => format!("UTC{:+}:{:02}", m / 60, (m % 60).abs()),
    };
    format!("{} {zone}", t.with_timezone(&offset).format("%Y-%m-%d %H:%M"))
}

/// A Unix-millisecond time in UTC (for places outside the reactive page).
pub fn format_time(ms: i64) -> String {
    format_time_at(ms, 0)
}

/// A time in the viewer's time zone, with the exact instant in `datetime`.
#[component]
pub fn Time(ms: i64) -> impl IntoView {
    let tz = use_context::<TzOffset>().map(|t| t.0);
    let iso = chrono::DateTime::from_timestamp_millis(ms).map(|t| t.to_rfc3339()).unwrap_or_default();
    view! { <time datetime=iso>{move || format_time_at(ms, tz.map_or(0, |s| s.get()))}</time> }
}

/// "in 3 days", "2 hours ago", relative to `now`.
pub fn relative(ms: i64, now: i64) -> String {
    let diff = (ms - now) / 1000;
    let (n, unit) = match diff.abs() {
        s if s < 90 => return "just now".into(),
        s if s < 90 * 60 => (s / 60, "minute"),
        s if s < 36 * 3600 => (s / 3600, "hour"),
        s => (s / 86400, "day"),
    };
    let plural = if n == 1 { "" } else { "s" };
    if diff > 0 {
        format!("in {n} {unit}{plural}")
    } else {
        format!("{n} {unit}{plural} ago")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times_read_naturally() {
        let now = 1_000_000_000_000;
        assert_eq!(relative(now + 3 * 86_400_000, now), "in 3 days");
        assert_eq!(relative(now - 2 * 3_600_000, now), "2 hours ago");
        assert_eq!(relative(now + 10_000, now), "just now");
        assert_eq!(relative(now - 60_000 * 5, now), "5 minutes ago");
        assert_eq!(initials("Grace Brewster Hopper"), "GB");
    }

    #[test]
    fn times_in_the_viewers_zone() {
        let ms = 1_796_461_200_000; // 2026-12-05 09:00 UTC
        assert_eq!(format_time_at(ms, 0), "2026-12-05 09:00 UTC");
        assert_eq!(format_time_at(ms, 60), "2026-12-05 10:00 UTC+1");
        assert_eq!(format_time_at(ms, -300), "2026-12-05 04:00 UTC-5");
        assert_eq!(format_time_at(ms, 330), "2026-12-05 14:30 UTC+5:30");
    }
}

/// A list that could not be shown: a filter that does not parse is a message above where the
/// list goes (naming the field), anything else the error page.
#[component]
pub fn ListError(error: AppError) -> impl IntoView {
    match error {
        AppError::Invalid { field, message } => {
            let text = match field {
                Some(f) => format!("{f}: {message}"),
                None => message,
            };
            view! { <NoticeBanner notice=Notice { ok: false, text, field: None } /> }.into_any()
        }
        e => view! { <ErrorPanel error=e /> }.into_any(),
    }
}

/// The message about one form field, next to it: from the hydrated form's answer, or (with
/// JavaScript off) from the outcome carried over the redirect.
#[component]
pub fn FieldError(
    #[prop(into)] latest: Signal<Option<Result<Notice, AppError>>>,
    flash: Flash,
    #[prop(into)] field: String,
) -> impl IntoView {
    move || {
        let from_action = match latest.get() {
            Some(Err(AppError::Invalid { field: Some(f), message })) if f == field => Some(message),
            _ => None,
        };
        let from_flash = flash
            .get()
            .and_then(|r| r.ok().flatten())
            .filter(|n| !n.ok && n.field.as_deref() == Some(field.as_str()))
            .map(|n| n.text);
        from_action.or(from_flash).map(|message| view! { <p class="field-error" role="alert">{message}</p> })
    }
}

/// A person picker: type a name or an email; with JavaScript, matching people are offered as
/// you type (their email fills the field). The field sends what it holds (an email), which the
/// server resolves to exactly one active person.
#[component]
pub fn PersonPicker(name: &'static str, label: &'static str) -> impl IntoView {
    let typed = RwSignal::new(String::new());
    let found = people_found(typed);
    let list = format!("{name}-options");
    view! {
        <label class="field">
            <span>{label}</span>
            <input
                type="text"
                name=name
                list=list.clone()
                autocomplete="off"
                placeholder="name or email"
                required
                on:input=move |ev| typed.set(event_target_value(&ev))
            />
        </label>
        <Found id=list found />
    }
}

/// The people whose name or email starts with what is typed (from two characters on).
fn people_found(typed: RwSignal<String>) -> Resource<Result<Vec<PersonOption>, AppError>> {
    Resource::new(
        move || typed.get(),
        |q| async move {
            if q.trim().chars().count() < 2 {
                Ok(Vec::new())
            } else {
                crate::ui::api::find_people(q).await
            }
        },
    )
}

/// A picker's suggestions, as the options of a `<datalist>`.
#[component]
fn Found(id: String, found: Resource<Result<Vec<PersonOption>, AppError>>) -> impl IntoView {
    view! {
        <datalist id=id>
            <Suspense fallback=|| ()>
                {move || found.get().and_then(Result::ok).map(|people| {
                    people.into_iter().map(|p| view! { <option value=p.email.clone()>{format!("{} · {}", p.name, p.email)}</option> }).collect_view()
                })}
            </Suspense>
        </datalist>
    }
}

/// Several people, as emails separated by commas: typed, which works without JavaScript; with
/// it, also found by name or email as one types and added to the list with "Add" (or Enter,
/// which here adds rather than submits the form). The list is the plain textarea: what was
/// typed before the page came alive is kept, and the form posts exactly what it shows.
#[component]
pub fn PeopleList(name: String, id: String, label: &'static str, value: String) -> impl IntoView {
    let field = NodeRef::<leptos::html::Textarea>::new();
    let typed = RwSignal::new(String::new());
    let said = RwSignal::new(String::new());
    // The finder needs JavaScript: it shows once the page is hydrated (effects run in the
    // browser only).
    let ready = RwSignal::new(false);
    Effect::new(move |_| ready.set(true));
    let found = people_found(typed);
    let add = move || {
        let who = typed.get_untracked().trim().to_owned();
        if !who.contains('@') {
            said.set("Pick someone from the suggestions, or type their email.".into());
            return;
        }
        if let Some(el) = field.get_untracked() {
            let current = el.value();
            let kept = current.trim().trim_end_matches(',').trim();
            el.set_value(&if kept.is_empty() { who.clone() } else { format!("{kept}, {who}") });
        }
        said.set(format!("Added {who}."));
        typed.set(String::new());
    };
    let options = format!("{id}-found");
    view! {
        <label for=id.clone()>{label}</label>
        <textarea id=id name=name rows="2" node_ref=field>{value}</textarea>
        <span class="picker-add" hidden=move || !ready.get()>
            <input
                type="search"
                list=options.clone()
                autocomplete="off"
                placeholder="Find by name or email"
                aria-label=format!("Find someone to add: {label}")
                prop:value=move || typed.get()
                on:input=move |ev| typed.set(event_target_value(&ev))
                on:keydown=move |ev| {
                    if ev.key() == "Enter" && !ev.is_composing() {
                        ev.prevent_default();
                        add();
                    }
                }
            />
            <button type="button" class="btn secondary" aria-label=format!("Add to: {label}") on:click=move |_| add()>"Add"</button>
            <span class="muted small" role="status" aria-live="polite">{move || said.get()}</span>
        </span>
        <Found id=options found />
    }
}
