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
