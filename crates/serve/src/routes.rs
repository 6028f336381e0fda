//! The routes, their response types and the OpenAPI document utoipa generates from them.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{middleware, Json, Router};
use serde::Serialize;
use tower_http::limit::RequestBodyLimitLayer;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{OpenApi, ToSchema};
use vmig_core::registry;

use crate::{auth, ServeOptions};

/// The OpenAPI 3.1 document of the server, generated from the handlers below.
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "vmig",
        description = "Move vector data into Milvus 2.x: the REST API of `vmig serve`."
    ),
    paths(healthz, readyz, plugins, openapi),
    components(schemas(Health, PluginList, PluginEntry, ApiError)),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

/// Adds the bearer-token security scheme the protected routes name.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The answer of the health and readiness probes.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok` (`/healthz`) or `ready` (`/readyz`).
    pub status: String,
    /// The vmig version serving.
    pub version: String,
}

/// A plugin this server contains.
#[derive(Debug, Serialize, ToSchema)]
pub struct PluginEntry {
    /// Its name: the `type` of a job's `[source]`, `[[transform]]` or `[sink]` table (a
    /// parser's: its `format`).
    pub name: String,
    /// One line on what it does.
    pub summary: String,
    /// An example configuration (the table's other keys).
    #[schema(value_type = Object)]
    pub example: serde_json::Value,
}

/// The plugins this server contains, by kind, each sorted by name.
#[derive(Debug, Serialize, ToSchema)]
pub struct PluginList {
    /// Sources.
    pub sources: Vec<PluginEntry>,
    /// Transformers.
    pub transforms: Vec<PluginEntry>,
    /// Sinks.
    pub sinks: Vec<PluginEntry>,
    /// Parsers of data files.
    pub parsers: Vec<PluginEntry>,
}

/// An error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiError {
    /// What went wrong and, where there is one, what to do.
    pub error: String,
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        Json(ApiError {
            error: message.into(),
        }),
    )
        .into_response()
}

pub(crate) fn router(options: &ServeOptions) -> Router {
    let protected = Router::new()
        .route("/v1/plugins", get(plugins))
        .route("/openapi.json", get(openapi))
        .route_layer(middleware::from_fn_with_state(
            options.tokens.clone(),
            auth::require_token,
        ));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(protected)
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such route; see /openapi.json") })
        .layer(RequestBodyLimitLayer::new(options.max_body))
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", responses((status = 200, body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

/// Readiness: the server takes requests.
#[utoipa::path(get, path = "/readyz", responses((status = 200, body = Health)))]
async fn readyz() -> Json<Health> {
    Json(Health {
        status: "ready".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

/// The plugins of this build (as `vmig plugins --json`).
#[utoipa::path(
    get,
    path = "/v1/plugins",
    security(("bearer" = [])),
    responses(
        (status = 200, body = PluginList),
        (status = 401, body = ApiError, description = "no token, or not one this server accepts"),
        (status = 500, body = ApiError, description = "two plugins of one kind share a name"),
    )
)]
async fn plugins() -> Response {
    match plugin_list() {
        Ok(list) => Json(list).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

fn plugin_list() -> vmig_core::Result<PluginList> {
    fn entries<'a>(
        list: impl Iterator<Item = (&'a str, &'a str, serde_json::Value)>,
    ) -> Vec<PluginEntry> {
        list.map(|(name, summary, example)| PluginEntry {
            name: name.to_string(),
            summary: summary.to_string(),
            example,
        })
        .collect()
    }
    Ok(PluginList {
        sources: entries(
            registry::sources()?
                .values()
                .map(|p| (p.name, p.summary, p.example_config())),
        ),
        transforms: entries(
            registry::transforms()?
                .values()
                .map(|p| (p.name, p.summary, p.example_config())),
        ),
        sinks: entries(
            registry::sinks()?
                .values()
                .map(|p| (p.name, p.summary, p.example_config())),
        ),
        parsers: entries(
            registry::parsers()?
                .values()
                .map(|p| (p.name, p.summary, p.example_config())),
        ),
    })
}

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the OpenAPI 3.1 document", body = Object),
        (status = 401, body = ApiError),
    )
)]
async fn openapi() -> Response {
    Json(ApiDoc::openapi()).into_response()
}
