//! The OpenAPI document and the pages that render it: Swagger UI at `/docs`
//! and ReDoc at `/redoc`. Every script and style they load is served from
//! the binary (Swagger UI vendored by `utoipa-swagger-ui`, ReDoc's standalone
//! bundle from its npm package in `api/assets/redoc/`), so the pages work
//! without internet, under a Content-Security-Policy that allows nothing else.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use tower_http::set_header::SetResponseHeaderLayer;
use utoipa::openapi::OpenApi as OpenApiDoc;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::{Config, SwaggerUi};

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

/// Scripts and styles from this origin only. The pages style elements
/// inline (`style-src 'unsafe-inline'`), draw icons from `data:` URIs, and
/// ReDoc runs its search in a worker made from a `blob:`.
const DOCS_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
    img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src blob:; \
    base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// ReDoc renders the `<redoc>` element on its own: no inline script.
const REDOC_PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Locker Exchange API</title>
</head>
<body>
<redoc spec-url="/openapi.json"></redoc>
<script src="/redoc/redoc.standalone.js"></script>
</body>
</html>
"#;

const REDOC_SCRIPT: &[u8] = include_bytes!("../../assets/redoc/redoc.standalone.js");

pub fn router(doc: OpenApiDoc) -> Router<AppState> {
    let swagger = SwaggerUi::new("/docs")
        .url("/openapi.json", doc)
        .config(Config::new(["/openapi.json"]).persist_authorization(true));
    Router::new()
        .route("/redoc", get(|| async { Html(REDOC_PAGE) }))
        .route(
            "/redoc/redoc.standalone.js",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
                    REDOC_SCRIPT,
                )
                    .into_response()
            }),
        )
        .merge(Router::from(swagger))
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(DOCS_CSP),
        ))
}
