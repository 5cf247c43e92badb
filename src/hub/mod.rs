//! The hub: a native axum server that holds the authoritative data.
//!
//! - [`app`] builds the `Router` (tests call it with `oneshot`);
//! - [`run`] serves it on a listener until a shutdown future completes (tests bind port 0);
//! - [`db`] and [`push`] hold the SQLite storage; [`routes`] the handlers; [`cli`] the command line.

pub mod apply;
pub mod chunks;
pub mod cli;
pub mod config;
pub mod db;
pub mod docs;
pub mod error;
pub mod extract;
pub mod push;
pub mod queue;
pub mod resolve;
pub mod routes;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::services::ServeDir;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use db::Db;
pub use error::AppError;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub db: Arc<Db>,
    /// The most operations one push may carry.
    pub max_batch: usize,
    /// How long a chained push (`despues_de`) waits for the operation it names.
    pub predecessor_wait: std::time::Duration,
    /// When the hub started.
    pub started: Instant,
}

/// How long a chained push waits for its predecessor by default: the batch before it left the
/// same device just before it, so it is normally there within milliseconds.
pub const PREDECESSOR_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

impl AppState {
    /// State over a database, with the protocol's batch limit.
    pub fn new(db: Db) -> Self {
        AppState {
            db: Arc::new(db),
            max_batch: crate::core::protocol::MAX_BATCH,
            predecessor_wait: PREDECESSOR_WAIT,
            started: Instant::now(),
        }
    }
}

/// How the router is put together beyond the API.
#[derive(Clone, Debug, Default)]
pub struct HubOptions {
    /// Origins allowed by CORS (`*` allows any). Empty: same origin only.
    pub cors_origins: Vec<String>,
    /// A folder served at `/` (the demo POS page).
    pub www: Option<PathBuf>,
    /// A folder served at `/pkg/` (the built engine).
    pub pkg: Option<PathBuf>,
}

/// The largest configuration body the hub reads.
pub const CONFIG_BODY_LIMIT: usize = 64 * 1024;

/// The largest request body the hub reads (a full batch of large operations fits).
pub const BODY_LIMIT: usize = 16 * 1024 * 1024;

/// Builds the hub's router.
pub fn app(state: AppState, options: &HubOptions) -> Router {
    let api = Router::new()
        .route(
            "/sincronizacion/cola/",
            get(routes::list_operations).post(routes::push),
        )
        .route(
            "/sincronizacion/cola/{id}/resolver/",
            post(resolve::resolve_operation),
        )
        .route(
            "/sincronizacion/cola/{id}/procesar/",
            post(resolve::process_one),
        )
        .route(
            "/sincronizacion/conflictos/",
            get(resolve::list).post(resolve::resolve_by_id),
        )
        .route("/sincronizacion/conflictos/{id}/", get(resolve::get_one))
        .route(
            "/sincronizacion/configuracion/",
            get(config::list).post(config::set),
        )
        .route(
            "/sincronizacion/configuracion/{tienda}/",
            get(config::get_one),
        )
        .route("/sincronizacion/cambios/", get(routes::changes))
        .route("/sincronizacion/registros/", get(routes::logs))
        .route(
            "/sincronizacion/documentos/{coleccion}/{objeto_id}/",
            get(routes::document),
        )
        .route("/salud/", get(routes::health))
        .route("/metricas/", get(routes::metrics))
        .fallback(routes::api_not_found)
        .method_not_allowed_fallback(routes::method_not_allowed);
    let mut router = Router::new()
        .nest("/api", api)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state);
    if let Some(pkg) = &options.pkg {
        router = router.nest_service("/pkg", ServeDir::new(pkg));
    }
    if let Some(www) = &options.www {
        router = router.fallback_service(ServeDir::new(www));
    }
    if let Some(cors) = cors_layer(&options.cors_origins) {
        router = router.layer(cors);
    }
    // A request (its body included) that takes longer is answered 408 and rolled back.
    router
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(TraceLayer::new_for_http())
}

/// How long one request may take, body upload included.
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// How long a graceful shutdown waits for open requests before it gives up on them.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

fn cors_layer(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION]),
    )
}

/// Serves `router` on `listener` until `shutdown` completes. In-flight requests finish first
/// (graceful shutdown): a push that is being applied commits and gets its answer. A client
/// that keeps a request open past [`SHUTDOWN_GRACE`] after the signal is cut off (its push,
/// if any, rolls back and is sent again later).
pub async fn run(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (signalled, grace) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(listener, router).with_graceful_shutdown(async move {
        shutdown.await;
        let _ = signalled.send(());
    });
    tokio::select! {
        result = server => result,
        _ = async {
            if grace.await.is_ok() {
                tokio::time::sleep(SHUTDOWN_GRACE).await;
            } else {
                std::future::pending::<()>().await;
            }
        } => {
            tracing::warn!("requests still open {}s after the shutdown signal; stopping anyway", SHUTDOWN_GRACE.as_secs());
            Ok(())
        }
    }
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received; finishing in-flight requests");
}
