//! The API's description: the OpenAPI document, and Swagger UI to try it in a browser, served
//! from inside the binary (nothing is fetched from elsewhere, so it works offline).

use std::sync::{Arc, OnceLock};

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

/// Where the document is.
const DOCUMENT: &str = "/api/v1/openapi.json";

/// The OpenAPI document (generated once: it depends only on the code).
pub async fn openapi_json() -> Response {
    static DOC: OnceLock<String> = OnceLock::new();
    let doc = DOC.get_or_init(|| super::openapi().to_pretty_json().unwrap_or_else(|_| "{}".to_owned()));
    ([(header::CONTENT_TYPE, "application/json")], doc.clone()).into_response()
}

/// `/api/v1/docs`: to Swagger UI's page.
pub async fn docs_index() -> Redirect {
    Redirect::to("/api/v1/docs/")
}

/// Swagger UI's files (`/api/v1/docs/` is its page), set to read [`DOCUMENT`].
pub async fn docs_file(file: Option<Path<String>>) -> Response {
    static CONFIG: OnceLock<Arc<utoipa_swagger_ui::Config<'static>>> = OnceLock::new();
    // No validator: Swagger UI would otherwise ask validator.swagger.io about our document.
    let config = CONFIG.get_or_init(|| Arc::new(utoipa_swagger_ui::Config::from(DOCUMENT).validator_url("none")));
    let path = file.as_ref().map_or("", |Path(p)| p.as_str());
    match utoipa_swagger_ui::serve(path, config.clone()) {
        Ok(Some(file)) => {
            let mut res = (StatusCode::OK, file.bytes.into_owned()).into_response();
            let h = res.headers_mut();
            if let Ok(kind) = HeaderValue::from_str(&file.content_type) {
                h.insert(header::CONTENT_TYPE, kind);
            }
            if file.gzpipped {
                h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            }
            // Swagger UI styles and draws its icons inline.
            h.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
                     frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'",
                ),
            );
            res
        }
        Ok(None) => (StatusCode::NOT_FOUND, "No such file.").into_response(),
        Err(e) => {
            tracing::error!(error = %e, "serving Swagger UI");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
