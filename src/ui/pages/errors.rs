//! Pages for what went wrong.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::ui::components::*;
use crate::ui::error::AppError;

#[component]
pub fn NotFound() -> impl IntoView {
    view! {
        <Title text="Not found" />
        <ErrorPanel error=AppError::NotFound("there is no page at this address".into()) />
    }
}
