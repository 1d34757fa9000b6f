//! The OpenAPI document and the pages that render it: Swagger UI at `/docs`
//! and ReDoc at `/redoc`, both loading their scripts from a CDN as the
//! original product's pages did.

use axum::response::Html;
use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::OpenApi as OpenApiDoc;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_redoc::{Redoc, Servable};

use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "Locker Exchange API", description = "Hand an item over through a locker, without meeting."),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Accounts and logins"),
        (name = "lockers", description = "Finding lockers"),
        (name = "items", description = "Dropping and collecting items"),
        (name = "admin", description = "Running the lockers (admin only)"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut OpenApiDoc) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// Adds to every operation the refusals the server gives before any handler
/// runs, so a client generated from the document expects them: 400
/// (malformed JSON), 413 (body over 64 KiB) and 415 (not JSON) where there
/// is a body; 422 where a path or query value may not parse; 408 and 503
/// (the request took too long; the database is out of reach) everywhere.
pub fn with_common_refusals(mut doc: OpenApiDoc) -> OpenApiDoc {
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
    let refusal = |description: &str, schema: &str| {
        RefOr::T(
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name(schema)))
                        .build(),
                )
                .build(),
        )
    };
    for item in doc.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            let mut add = |status: &str, response| {
                operation
                    .responses
                    .responses
                    .entry(status.to_owned())
                    .or_insert(response);
            };
            if operation.request_body.is_some() {
                add("400", refusal("Malformed JSON", "ErrorBody"));
                add("413", refusal("Body over 64 KiB", "ErrorBody"));
                add("415", refusal("Not JSON", "ErrorBody"));
            }
            let takes_values = operation.parameters.as_ref().is_some_and(|p| !p.is_empty());
            if takes_values || operation.request_body.is_some() {
                add("422", refusal("Invalid input", "ValidationErrorBody"));
            }
            add("408", refusal("The request took too long", "ErrorBody"));
            add(
                "503",
                refusal(
                    "The database is out of reach (see Retry-After)",
                    "ErrorBody",
                ),
            );
        }
    }
    doc
}

const SWAGGER_UI: &str = r##"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Locker Exchange API</title>
<link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui", persistAuthorization: true });
</script>
</body>
</html>
"##;

pub fn router(doc: OpenApiDoc) -> Router<AppState> {
    let redoc: Router<AppState> = Redoc::with_url("/redoc", doc.clone()).into();
    Router::new()
        .route("/openapi.json", get(move || async move { Json(doc) }))
        .route("/docs", get(|| async { Html(SWAGGER_UI) }))
        .merge(redoc)
}
