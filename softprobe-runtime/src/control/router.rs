//! The router: every runtime route, the control API's and the OTLP API's, under one set of
//! layers. It sits above both handler modules; neither imports it.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

use super::{AppState, auth, captures, guard, handlers, openapi, ui};

/// The router of every runtime route, with auth, the body limit and JSON errors for unknown
/// routes and wrong methods. The [`guard`] (Host, Origin, content-type) and CORS layers are
/// applied last so that they wrap every route: add new routes above them.
pub fn app(state: AppState) -> Router {
    let router = Router::new()
        .route("/health", get(handlers::health))
        .route("/metrics", get(handlers::metrics))
        .route("/openapi.json", get(openapi::serve))
        .route("/v1/meta", get(handlers::meta))
        .route(
            "/v1/sessions",
            post(handlers::create_session).get(handlers::list_sessions),
        )
        .route("/v1/sessions/{id}/load-case", post(handlers::load_case))
        .route("/v1/sessions/{id}/rules", post(handlers::set_rules))
        .route("/v1/sessions/{id}/policy", post(handlers::set_policy))
        .route(
            "/v1/sessions/{id}/fixtures/auth",
            post(handlers::set_fixtures),
        )
        .route("/v1/sessions/{id}/stats", get(handlers::stats))
        .route("/v1/sessions/{id}/state", get(handlers::state))
        .route("/v1/sessions/{id}/close", post(handlers::close))
        .route("/v1/captures/{id}", get(captures::get))
        .route("/v1/inject", post(crate::otlp::handlers::inject))
        .route("/v1/traces", post(crate::otlp::handlers::traces))
        .route("/v1/proxy/ca.pem", get(handlers::proxy_ca))
        .route("/ui", get(ui::page))
        .route("/ui/", get(ui::page))
        .route("/ui/view.css", get(ui::css))
        .route("/ui/view.js", get(ui::js))
        .route("/ui/api/sessions", get(ui::sessions))
        .route("/ui/api/sessions/{id}", get(ui::session))
        .fallback(handlers::not_found)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ))
        .layer(DefaultBodyLimit::max(state.body_limit()));
    let router = match guard::cors(state.access()) {
        Some(cors) => router.layer(cors),
        None => router,
    };
    router
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::require_local,
        ))
        .with_state(state)
}
