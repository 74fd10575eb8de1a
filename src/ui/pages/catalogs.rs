//! Catalogs in the admin area: `/admin/catalogs`, the catalogs one manages and a new one, and
//! `/admin/catalogs/:catalog`, one catalog's settings, who manages it, its resources and
//! packages, and its deletion. Every form is a plain form that works without JavaScript.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

use crate::ui::api::*;
use crate::ui::components::*;
use crate::views::*;

#[component]
pub fn Catalogs() -> impl IntoView {
    view! {
        <Title text="Catalogs" />
        <SignedIn>
            <CatalogsBody />
        </SignedIn>
    }
}

#[component]
fn CatalogsBody() -> impl IntoView {
    let create = ServerAction::<CreateCatalog>::new();
    let list = Resource::new(move || create.version().get(), |_| admin_catalogs());
    let flash = flash();
    let latest: Signal<_> = create.value().into();
    view! {
        <p class="crumbs"><a href="/admin">"Admin"</a>" / Catalogs"</p>
        <h1>"Catalogs"</h1>
        <p class="lead">"A catalog holds resources, the access packages built from them, and who manages both."</p>
        <Notices latest flash />
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {loaded(list, move |r| match r {
                Ok(list) => view! {
                    <section class="panel" aria-labelledby="catalogs-h">
                        <h2 id="catalogs-h">"Your catalogs"</h2>
                        {if list.items.is_empty() {
                            view! { <p class="empty">"You manage no catalog yet."</p> }.into_any()
                        } else {
                            view! { <CatalogTable items=list.items /> }.into_any()
                        }}
                    </section>
                    {list.may_create.then(|| view! { <NewCatalog create latest flash /> })}
                }
                .into_any(),
                Err(e) => view! { <ErrorPanel error=e /> }.into_any(),
            })}
        </Suspense>
    }
}

#[component]
fn CatalogTable(items: Vec<CatalogSummary>) -> impl IntoView {
    view! {
        <table class="table" id="catalog-list">
            <thead><tr><th>"Catalog"</th><th>"State"</th><th>"Guests"</th><th>"Packages"</th><th>"Resources"</th></tr></thead>
            <tbody>
                {items.into_iter().map(|c| view! {
                    <tr>
                        <td>
                            <a href=format!("/admin/catalogs/{}", c.id)>{c.name}</a>
                            <span class="muted small block">{c.description}</span>
                        </td>
                        <td>{if c.enabled { "Enabled" } else { "Disabled" }}</td>
                        <td>{if c.externally_visible { "Visible" } else { "Hidden" }}</td>
                        <td>{c.packages}</td>
                        <td>{c.resources}</td>
                    </tr>
                }).collect_view()}
            </tbody>
        </table>
    }
}

#[component]
fn NewCatalog(
    create: ServerAction<CreateCatalog>,
    latest: Signal<Option<Result<Notice, crate::ui::error::AppError>>>,
    flash: Flash,
) -> impl IntoView {
    view! {
        <section class="panel" aria-labelledby="new-catalog-h">
            <h2 id="new-catalog-h">"New catalog"</h2>
            <ActionForm action=create attr:class="form" attr:id="new-catalog">
                <label for="new-name">"Name"</label>
                <input type="text" id="new-name" name="name" required maxlength="200" />
                <FieldError latest flash field="name" />
                <label for="new-description">"Description"</label>
                <textarea id="new-description" name="description" rows="2"></textarea>
                <label class="check"><input type="checkbox" name="externally_visible" />" Visible to guests of connected organizations"</label>
                <p><button type="submit" class="btn">"Create catalog"</button></p>
            </ActionForm>
        </section>
    }
}

#[component]
pub fn CatalogPage() -> impl IntoView {
    view! {
        <SignedIn>
            <CatalogBody />
        </SignedIn>
    }
}

/// The actions of a catalog's page, each a plain form posting to its server function.
#[derive(Clone, Copy)]
struct Actions {
    save: ServerAction<UpdateCatalog>,
    grant: ServerAction<GrantCatalogRole>,
    revoke: ServerAction<RevokeCatalogRole>,
    add: ServerAction<AddResource>,
    bind: ServerAction<BindGroup>,
    delete: ServerAction<DeleteCatalog>,
    start: ServerAction<StartPackageDraft>,
    discard: ServerAction<DiscardPackageDraft>,
    latest: Signal<Option<Result<Notice, crate::ui::error::AppError>>>,
    flash: Flash,
}

#[component]
fn CatalogBody() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.read().get("catalog").and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
    let (save, grant, revoke, add, delete) = (
        ServerAction::<UpdateCatalog>::new(),
        ServerAction::<GrantCatalogRole>::new(),
        ServerAction::<RevokeCatalogRole>::new(),
        ServerAction::<AddResource>::new(),
        ServerAction::<DeleteCatalog>::new(),
    );
    let (start, discard) = (ServerAction::<StartPackageDraft>::new(), ServerAction::<DiscardPackageDraft>::new());
    let bind = ServerAction::<BindGroup>::new();
    let changed = move || {
        (
            save.version().get(),
            grant.version().get(),
            revoke.version().get(),
            add.version().get(),
            bind.version().get(),
            delete.version().get(),
            discard.version().get(),
        )
    };
    let detail = Resource::new(move || (id(), changed()), |(id, _)| load_catalog(id));
    let latest = latest_of(vec![
        save.value().into(),
        grant.value().into(),
        revoke.value().into(),
        add.value().into(),
        bind.value().into(),
        delete.value().into(),
        start.value().into(),
        discard.value().into(),
    ]);
    let actions = Actions { save, grant, revoke, add, bind, delete, start, discard, latest, flash: flash() };
    view! {
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {loaded(detail, move |r| match r {
                Ok(d) => view! { <CatalogView d actions /> }.into_any(),
                Err(e) => view! { <ErrorPanel error=e /> }.into_any(),
            })}
        </Suspense>
    }
}

#[component]
fn CatalogView(d: CatalogAdmin, actions: Actions) -> impl IntoView {
    let c = d.summary.clone();
    let Actions { latest, flash, .. } = actions;
    view! {
        <Title text=c.name.clone() />
        <p class="crumbs"><a href="/admin">"Admin"</a>" / "<a href="/admin/catalogs">"Catalogs"</a></p>
        <h1>{c.name.clone()}</h1>
        <p class="lead">{c.description.clone()}</p>
        <p class="tags">
            <span class="tag">{if c.enabled { "Enabled" } else { "Disabled" }}</span>
            <span class="tag">{if c.externally_visible { "Visible to guests" } else { "Members only" }}</span>
        </p>
        <Notices latest flash />
        {d.may_own.then(|| view! { <Settings c=c.clone() actions /> })}
        <Managers catalog=c.id holders=d.holders.clone() may_own=d.may_own actions />
        <Resources
            catalog=c.id
            resources=d.resources.clone()
            systems=d.systems.clone()
            connected=d.connected.clone()
            may_own=d.may_own
            actions
        />
        <section class="panel" aria-labelledby="packages-h">
            <h2 id="packages-h">"Access packages"</h2>
            {d.may_build.then(|| view! { <Build catalog=c.id drafts=d.drafts.clone() actions /> })}
            {if d.packages.is_empty() {
                view! { <p class="empty">"No access package in this catalog yet."</p> }.into_any()
            } else {
                view! {
                    <ul class="plain" id="catalog-packages">
                        {d.packages.iter().map(|p| view! {
                            <li>
                                <a href=format!("/admin/packages/{}", p.id)>{p.name.clone()}</a>
                                {(!p.enabled).then(|| view! { " " <span class="tag">"Disabled"</span> })}
                                {p.hidden.then(|| view! { " " <span class="tag">"Hidden"</span> })}
                            </li>
                        }).collect_view()}
                    </ul>
                }.into_any()
            }}
        </section>
        {d.may_own.then(|| view! {
            <section class="panel danger" aria-labelledby="delete-h">
                <h2 id="delete-h">"Delete this catalog"</h2>
                <p class="muted small">"Refused while any of its packages has live assignments or open requests. Its history stays in the audit log."</p>
                <ActionForm action=actions.delete attr:class="inline" attr:id="delete-catalog">
                    <input type="hidden" name="catalog_id" value=c.id />
                    <button type="submit" class="btn-danger">"Delete catalog"</button>
                </ActionForm>
            </section>
        })}
    }
}

/// Start the package builder, and the viewer's drafts to resume or discard.
#[component]
fn Build(catalog: i64, drafts: Vec<DraftSummary>, actions: Actions) -> impl IntoView {
    view! {
        <ActionForm action=actions.start attr:class="inline" attr:id="new-package">
            <input type="hidden" name="catalog_id" value=catalog />
            <input type="hidden" name="from" value="new" />
            <button type="submit" class="btn">"New access package"</button>
        </ActionForm>
        {(!drafts.is_empty()).then(|| view! {
            <h3>"Your drafts"</h3>
            <ul class="plain" id="catalog-drafts">
                {drafts.into_iter().map(|dr| view! {
                    <li>
                        <a href=crate::ui::api::draft_path(dr.id, dr.step)>{dr.name}</a>
                        <span class="muted small">{format!(" · at {} · ", dr.step.label())}<Time ms=dr.updated_at /></span>" "
                        <ActionForm action=actions.discard attr:class="inline">
                            <input type="hidden" name="draft_id" value=dr.id />
                            <button type="submit" class="btn-secondary">"Discard"</button>
                        </ActionForm>
                    </li>
                }).collect_view()}
            </ul>
        })}
    }
}

#[component]
fn Settings(c: CatalogSummary, actions: Actions) -> impl IntoView {
    let Actions { latest, flash, .. } = actions;
    view! {
        <section class="panel" aria-labelledby="settings-h">
            <h2 id="settings-h">"Settings"</h2>
            <ActionForm action=actions.save attr:class="form" attr:id="catalog-settings">
                <input type="hidden" name="catalog_id" value=c.id />
                <input type="hidden" name="version" value=c.version />
                <label for="catalog-name">"Name"</label>
                <input type="text" id="catalog-name" name="name" required maxlength="200" value=c.name />
                <FieldError latest flash field="name" />
                <label for="catalog-description">"Description"</label>
                <textarea id="catalog-description" name="description" rows="2">{c.description}</textarea>
                <label class="check"><input type="checkbox" name="enabled" checked=c.enabled />" Enabled: its packages can be requested"</label>
                <label class="check"><input type="checkbox" name="externally_visible" checked=c.externally_visible />" Visible to guests of connected organizations"</label>
                <p><button type="submit" class="btn">"Save"</button></p>
            </ActionForm>
        </section>
    }
}

#[component]
fn Managers(catalog: i64, holders: Vec<RoleHolder>, may_own: bool, actions: Actions) -> impl IntoView {
    let Actions { latest, flash, .. } = actions;
    view! {
        <section class="panel" aria-labelledby="managers-h">
            <h2 id="managers-h">"Who manages it"</h2>
            <table class="table" id="catalog-roles">
                <thead><tr><th>"Person"</th><th>"Role"</th>{may_own.then(|| view! { <th><span class="sr-only">"Actions"</span></th> })}</tr></thead>
                <tbody>
                    {holders.into_iter().map(|h| view! {
                        <tr>
                            <td>{h.name}<span class="muted small block">{h.email}</span></td>
                            <td title=h.role.describe()>{h.role.label()}</td>
                            {may_own.then(|| view! {
                                <td class="row-actions">
                                    <ActionForm action=actions.revoke attr:class="inline">
                                        <input type="hidden" name="catalog_id" value=catalog />
                                        <input type="hidden" name="user_id" value=h.user_id />
                                        <input type="hidden" name="role" value=h.role.as_str() />
                                        <button type="submit" class="btn-secondary">"Remove"</button>
                                    </ActionForm>
                                </td>
                            })}
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
            {may_own.then(|| view! {
                <ActionForm action=actions.grant attr:class="filters" attr:id="grant-role">
                    <input type="hidden" name="catalog_id" value=catalog />
                    <PersonPicker name="person" label="Person" />
                    <label class="field">
                        <span>"Role"</span>
                        <select name="role">
                            {CatalogRole::ALL.iter().map(|r| view! { <option value=r.as_str()>{r.label()}</option> }).collect_view()}
                        </select>
                    </label>
                    <button type="submit" class="btn">"Add"</button>
                </ActionForm>
                <FieldError latest flash field="person" />
                <ul class="muted small">
                    {CatalogRole::ALL.iter().map(|r| view! { <li><strong>{r.label()}</strong>": "{r.describe()}</li> }).collect_view()}
                </ul>
            })}
        </section>
    }
}

#[component]
fn Resources(
    catalog: i64,
    resources: Vec<CatalogResource>,
    systems: Vec<SystemOption>,
    connected: Vec<SystemOption>,
    may_own: bool,
    actions: Actions,
) -> impl IntoView {
    let Actions { latest, flash, .. } = actions;
    view! {
        <section class="panel" aria-labelledby="resources-h">
            <h2 id="resources-h">"Resources"</h2>
            {if resources.is_empty() {
                view! { <p class="empty">"No resource yet: add one below, then build packages from its roles."</p> }.into_any()
            } else {
                view! {
                    <table class="table" id="catalog-resources">
                        <thead><tr><th>"Resource"</th><th>"System"</th><th>"Roles"</th></tr></thead>
                        <tbody>
                            {resources.into_iter().map(|r| view! {
                                <tr>
                                    <td>{r.name}<span class="muted small block">{r.description}</span></td>
                                    <td>{r.system}</td>
                                    <td>{r.roles.join(", ")}</td>
                                </tr>
                            }).collect_view()}
                        </tbody>
                    </table>
                }.into_any()
            }}
            {may_own.then(|| view! {
                <h3>"Add a resource"</h3>
                <ActionForm action=actions.add attr:class="form" attr:id="add-resource">
                    <input type="hidden" name="catalog_id" value=catalog />
                    <label for="resource-system">"From"</label>
                    <select id="resource-system" name="system_id">
                        {systems.into_iter().map(|s| view! { <option value=s.id>{format!("{} ({})", s.name, s.kind)}</option> }).collect_view()}
                    </select>
                    <label for="resource-name">"Name"</label>
                    <input type="text" id="resource-name" name="name" required maxlength="200" />
                    <FieldError latest flash field="name" />
                    <label for="resource-description">"Description"</label>
                    <input type="text" id="resource-description" name="description" />
                    <label for="resource-roles">"Roles (comma-separated)"</label>
                    <input type="text" id="resource-roles" name="roles" value="Member" required />
                    <FieldError latest flash field="roles" />
                    <p><button type="submit" class="btn">"Add resource"</button></p>
                </ActionForm>
            })}
            {(may_own && !connected.is_empty()).then(|| view! {
                <h3>"Bind a group of a connected system"</h3>
                <ActionForm action=actions.bind attr:class="form" attr:id="bind-group">
                    <input type="hidden" name="catalog_id" value=catalog />
                    <label for="bind-system">"System"</label>
                    <select id="bind-system" name="system_id">
                        {connected.into_iter().map(|s| view! { <option value=s.id>{format!("{} ({})", s.name, s.kind)}</option> }).collect_view()}
                    </select>
                    <label for="bind-external">"Its id there"</label>
                    <input type="text" id="bind-external" name="external_id" required placeholder="a SCIM group's id · cn=…,ou=groups,dc=… · a receiver's name for it" />
                    <FieldError latest flash field="external_id" />
                    <label for="bind-name">"Name"</label>
                    <input type="text" id="bind-name" name="name" required maxlength="200" />
                    <label for="bind-description">"Description"</label>
                    <input type="text" id="bind-description" name="description" />
                    <p class="muted small">"One role, its membership: packages grant it like any other role."</p>
                    <p><button type="submit" class="btn-secondary">"Bind group"</button></p>
                </ActionForm>
            })}
        </section>
    }
}
