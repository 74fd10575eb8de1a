//! The sign-in page (`/signin`).

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::ui::api::*;
use crate::ui::components::*;
use crate::ui::use_viewer;

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
                {loaded(choices, move |r| match r {
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
                                                <span class="avatar" aria-hidden="true">{initials(&p.name)}</span>
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
