//! API tokens (`/tokens`): the signed-in person's own tokens for scripts and tools — made
//! with a name, scopes and a lifetime (the secret shown once), listed with when each was last
//! used, and revoked. Plain forms throughout.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::ui::api::*;
use crate::ui::components::*;
use crate::ui::error::AppError;
use crate::views::*;

#[component]
pub fn Tokens() -> impl IntoView {
    view! {
        <Title text="API tokens" />
        <SignedIn>
            <TokensBody />
        </SignedIn>
    }
}

/// What each scope lets a token do, as the form explains it.
fn scope_help(word: &str) -> &'static str {
    match word {
        "read" => "read what you can see: packages, your requests, approvals and access",
        "request" => "ask for access and cancel your requests",
        "decide" => "approve or deny the requests waiting for you",
        "admin" => "use your administrative roles (catalogs, packages, the audit trail)",
        "metrics" => "read the portal's metrics at /metrics",
        "scim" => "let an identity provider push people and groups (/scim/v2)",
        _ => "",
    }
}

#[component]
fn TokensBody() -> impl IntoView {
    let create = ServerAction::<CreateMyToken>::new();
    let revoke = ServerAction::<RevokeMyToken>::new();
    let tokens = Resource::new(move || (create.version().get(), revoke.version().get()), |_| my_tokens());
    let latest = latest_of(vec![create.value().into(), revoke.value().into()]);
    let created: Signal<Option<Result<Notice, AppError>>> = create.value().into();
    let flash = flash();
    view! {
        <h1>"API tokens"</h1>
        <p class="lead">
            "A token lets a script or tool act as you through the "
            <a href="/api/v1/docs/">"REST API"</a>
            ", with only the scopes you give it. Keep it like a password; revoke it when it is no longer used."
        </p>
        <Notices latest flash />
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {loaded(tokens, move |r| match r {
                Ok(mine) => view! {
                    {mine.fresh_secret.clone().map(|secret| view! {
                        <section class="panel" aria-labelledby="fresh-h">
                            <h2 id="fresh-h">"Your new token"</h2>
                            <p>"Copy it now: it is not shown again."</p>
                            <p><code id="new-secret">{secret}</code></p>
                        </section>
                    })}
                    <section class="panel" aria-labelledby="tokens-h">
                        <h2 id="tokens-h">"Your tokens"</h2>
                        {if mine.items.is_empty() {
                            view! { <p class="empty">"You have no API token."</p> }.into_any()
                        } else {
                            view! { <TokenTable id="tokens".to_owned() items=mine.items revoke /> }.into_any()
                        }}
                    </section>
                    <section class="panel" aria-labelledby="new-token-h">
                        <h2 id="new-token-h">"New token"</h2>
                        <ActionForm action=create attr:class="form" attr:id="new-token">
                            <TokenFields suffix=String::new() legend="Scopes" scopes=mine.scopes max_days=mine.max_days
                                latest=created flash />
                            <p><button type="submit" class="btn">"Make token"</button></p>
                        </ActionForm>
                    </section>
                }.into_any(),
                Err(e) => view! { <ErrorPanel error=e /> }.into_any(),
            })}
        </Suspense>
    }
}

#[component]
fn TokenTable(
    /// The table's id (each unique on its page).
    id: String,
    items: Vec<TokenView>,
    revoke: ServerAction<RevokeMyToken>,
) -> impl IntoView {
    view! {
        <table class="table" id=id>
            <thead>
                <tr>
                    <th>"Name"</th><th>"Scopes"</th><th>"Made"</th><th>"Expires"</th><th>"Last used"</th><th>"State"</th>
                    <th><span class="sr-only">"Actions"</span></th>
                </tr>
            </thead>
            <tbody>
                {items.into_iter().map(|t| {
                    let state = if t.revoked_at.is_some() { "Revoked" } else if t.active { "Active" } else { "Expired" };
                    view! {
                        <tr id=format!("token-{}", t.id)>
                            <td>{t.name.clone()}</td>
                            <td>{t.scopes.join(", ")}</td>
                            <td><Time ms=t.created_at /></td>
                            <td><Time ms=t.expires_at /></td>
                            <td>{match t.last_used_at {
                                Some(ms) => view! { <Time ms /> }.into_any(),
                                None => view! { <span class="muted">"never"</span> }.into_any(),
                            }}</td>
                            <td><span class="tag">{state}</span></td>
                            <td>{t.active.then(|| view! {
                                <ActionForm action=revoke attr:class="inline">
                                    <input type="hidden" name="token_id" value=t.id />
                                    <button type="submit" class="btn-link">"Revoke"</button>
                                </ActionForm>
                            })}</td>
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
    }
}

/// Service accounts (`/admin/service-accounts`, administrators): accounts that sign in
/// nowhere and act through the tokens made for them here — each with its address (how roles
/// and access are given to it), its tokens (revoked here), and a form for a new token; and a
/// new account.
#[component]
pub fn ServiceAccountsPage() -> impl IntoView {
    view! {
        <Title text="Service accounts" />
        <SignedIn>
            <ServiceAccountsBody />
        </SignedIn>
    }
}

#[component]
fn ServiceAccountsBody() -> impl IntoView {
    let create = ServerAction::<CreateServiceAccount>::new();
    let make = ServerAction::<CreateServiceToken>::new();
    let revoke = ServerAction::<RevokeMyToken>::new();
    let accounts = Resource::new(
        move || (create.version().get(), make.version().get(), revoke.version().get()),
        |_| load_service_accounts(),
    );
    let latest = latest_of(vec![create.value().into(), make.value().into(), revoke.value().into()]);
    let created: Signal<Option<Result<Notice, AppError>>> = create.value().into();
    let made: Signal<Option<Result<Notice, AppError>>> = make.value().into();
    let flash = flash();
    view! {
        <p class="crumbs"><a href="/admin">"Admin"</a>" / Service accounts"</p>
        <h1>"Service accounts"</h1>
        <p class="lead">
            "A service account signs in nowhere: it acts through the "
            <a href="/api/v1/docs/">"REST API"</a>
            " with the tokens made for it here, within the roles and access it is given (by its address, like anyone's)."
        </p>
        <Notices latest flash />
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {loaded(accounts, move |r| match r {
                Ok(list) => view! {
                    {list.fresh.clone().map(|f| view! {
                        <section class="panel" aria-labelledby="fresh-h">
                            <h2 id="fresh-h">"The new token"</h2>
                            <p>{format!("For {}. Copy it now: it is not shown again.", f.account)}</p>
                            <p><code id="new-secret">{f.secret}</code></p>
                        </section>
                    })}
                    {if list.items.is_empty() {
                        view! { <p class="empty">"There is no service account yet."</p> }.into_any()
                    } else {
                        let (scopes, max_days) = (list.scopes, list.max_days);
                        list.items
                            .into_iter()
                            .map(|a| view! { <Account a scopes=scopes.clone() max_days made make revoke flash /> })
                            .collect_view()
                            .into_any()
                    }}
                    <section class="panel" aria-labelledby="new-account-h">
                        <h2 id="new-account-h">"New service account"</h2>
                        <ActionForm action=create attr:class="form" attr:id="new-account">
                            <label for="account-name">"Name"</label>
                            <input type="text" id="account-name" name="name" required maxlength="100" placeholder="Nightly HR sync" />
                            <FieldError latest=created flash field="name" />
                            <label for="account-purpose">"What it does"</label>
                            <input type="text" id="account-purpose" name="purpose" maxlength="500" />
                            <FieldError latest=created flash field="purpose" />
                            <p><button type="submit" class="btn">"Make service account"</button></p>
                        </ActionForm>
                    </section>
                }.into_any(),
                Err(e) => view! { <ErrorPanel error=e /> }.into_any(),
            })}
        </Suspense>
    }
}

#[component]
fn Account(
    a: ServiceAccountView,
    scopes: Vec<String>,
    max_days: u32,
    made: Signal<Option<Result<Notice, AppError>>>,
    make: ServerAction<CreateServiceToken>,
    revoke: ServerAction<RevokeMyToken>,
    flash: Flash,
) -> impl IntoView {
    let (heading, labelled_by) = (format!("account-{}-h", a.id), format!("account-{}-h", a.id));
    view! {
        <section class="panel" id=format!("account-{}", a.id) aria-labelledby=labelled_by>
            <h2 id=heading>{a.name.clone()} " "
                <span class="tag">{if a.active { "Active" } else { "Disabled" }}</span>
            </h2>
            <p><code>{a.email.clone()}</code>{(!a.purpose.is_empty()).then(|| format!(" — {}", a.purpose))}</p>
            {if a.tokens.is_empty() {
                view! { <p class="empty">"No token yet."</p> }.into_any()
            } else {
                view! { <TokenTable id=format!("tokens-{}", a.id) items=a.tokens revoke /> }.into_any()
            }}
            {a.active.then(|| view! {
                <details>
                    <summary>"New token"</summary>
                    <ActionForm action=make attr:class="form">
                        <input type="hidden" name="account_id" value=a.id />
                        <TokenFields suffix=format!("-{}", a.id) legend="Scopes (within the account's own rights)"
                            scopes max_days latest=made flash />
                        <p><button type="submit" class="btn">"Make token"</button></p>
                    </ActionForm>
                </details>
            })}
        </section>
    }
}

/// A new token's fields: its name, a box per scope it may be given (`read` ticked), and how
/// many days it lasts; `suffix` keeps the ids unique on a page with several such forms.
#[component]
fn TokenFields(
    suffix: String,
    legend: &'static str,
    scopes: Vec<String>,
    max_days: u32,
    latest: Signal<Option<Result<Notice, AppError>>>,
    flash: Flash,
) -> impl IntoView {
    let (name_id, days_id) = (format!("token-name{suffix}"), format!("token-days{suffix}"));
    view! {
        <label for=name_id.clone()>"Name"</label>
        <input type="text" id=name_id name="name" required maxlength="100" placeholder="laptop script" />
        <FieldError latest flash field="name" />
        <fieldset>
            <legend>{legend}</legend>
            {scopes.into_iter().map(|word| {
                let help = scope_help(&word);
                let checked = word == "read";
                view! {
                    <label class="check">
                        <input type="checkbox" name=format!("scopes[{word}]") checked=checked />
                        " " <code>{word.clone()}</code> {format!(" — {help}")}
                    </label>
                }
            }).collect_view()}
        </fieldset>
        <FieldError latest flash field="scopes" />
        <label for=days_id.clone()>"Lasts (days)"</label>
        <input type="number" id=days_id name="days" min="1" max=max_days value="30" required />
        <FieldError latest flash field="days" />
    }
}
