//! Server functions of access reviews: the reviewer's page and the reviews' owners.

#[cfg(not(feature = "ssr"))]
use leptos::server;

use crate::ui::error::AppError;
use crate::views::*;

#[cfg(feature = "ssr")]
use super::{at_most, cursor, ok, server, MAX_JUSTIFICATION};

/// The assignments the signed-in person is asked to review, waiting ones first.
#[server(endpoint = "my_reviews")]
pub async fn my_reviews(after: Option<String>) -> Result<Page<ReviewItemView>, AppError> {
    let (service, actor) = server::actor().await?;
    Ok(service.my_review_items(&actor, after.as_deref()).await?)
}

/// Answer for one or several assignments (`item_ids[0]=…&item_ids[4]=…`): `keep`, `remove` or
/// `dont_know`, with a justification. All or nothing. `seen`: the answer one item's form
/// showed (empty: none), so another reviewer's answer is changed only knowingly.
#[server(endpoint = "answer_review")]
pub async fn answer_review(
    item_ids: Option<Vec<i64>>,
    decision: String,
    justification: String,
    seen: Option<String>,
) -> Result<Notice, AppError> {
    use crate::domain::review::ReviewDecision;
    let result = async {
        at_most("justification", &justification, MAX_JUSTIFICATION)?;
        let decision = ReviewDecision::parse(&decision).ok_or_else(|| AppError::Invalid {
            field: Some("decision".into()),
            message: "keep, remove or don't know".into(),
        })?;
        let (service, actor) = server::actor().await?;
        let ids = item_ids.unwrap_or_default();
        let seen = match seen.as_deref() {
            None => None,
            Some("") => Some(None),
            Some(word) => Some(Some(ReviewDecision::parse(word).ok_or_else(|| AppError::Invalid {
                field: Some("seen".into()),
                message: "the form is out of date: reload the page".into(),
            })?)),
        };
        let n = service.decide_review(&actor, &ids, (decision, &justification), seen).await?;
        let what = match decision {
            ReviewDecision::Keep => "keep",
            ReviewDecision::Remove => "remove",
            ReviewDecision::DontKnow => "don't know",
        };
        Ok(ok(if n == 1 {
            format!("Answered “{what}”. You can change it until the review ends.")
        } else {
            format!("Answered “{what}” for {n} people. You can change it until the review ends.")
        }))
    }
    .await;
    server::finish(result).await
}

/// The reviews the signed-in person may see (administrators and catalog managers).
#[server(endpoint = "load_reviews")]
pub async fn load_reviews(before: Option<String>) -> Result<Page<ReviewView>, AppError> {
    let (service, actor) = server::actor().await?;
    Ok(service.reviews_list(&actor, cursor(before)).await?)
}

/// End a running review now (its owners).
#[server(endpoint = "end_review")]
pub async fn end_review(review_id: i64) -> Result<Notice, AppError> {
    let result = async {
        let (service, actor) = server::actor().await?;
        service.end_review_early(&actor, review_id).await?;
        Ok(ok("Review ended: its answers are final, and the policy's default answered for the rest."))
    }
    .await;
    server::finish(result).await
}

/// Apply an ended review's removals (its owners).
#[server(endpoint = "apply_review")]
pub async fn apply_review(review_id: i64) -> Result<Notice, AppError> {
    let result = async {
        let (service, actor) = server::actor().await?;
        let n = service.apply_review(&actor, review_id).await?;
        Ok(ok(format!("Applied: {n} assignments removed. Their removal is being provisioned.")))
    }
    .await;
    server::finish(result).await
}
