//! The hub's command line.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// pos-sync hub: the authoritative server of a chain's tills.
#[derive(Debug, Parser)]
#[command(name = "pos-sync-hub", version, about)]
pub struct Cli {
    /// Log as JSON lines instead of text.
    #[arg(long, global = true, env = "POS_SYNC_LOG_JSON")]
    pub log_json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The hub's commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the REST API (and, if given, the demo page and the engine package).
    Serve(ServeArgs),
    /// Process the hub-side queue (deferred operations) once, or continuously.
    Sincronizar(SyncArgs),
}

/// Options of `sincronizar` (the specification's `manage.py sincronizar`).
#[derive(Debug, clap::Args)]
pub struct SyncArgs {
    /// The SQLite database file.
    #[arg(long, env = "POS_SYNC_DB", default_value = "pos-sync.db")]
    pub db: PathBuf,
    /// Keep processing (a daemon) until SIGINT or SIGTERM.
    #[arg(long)]
    pub continuo: bool,
    /// Seconds between passes with --continuo.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub intervalo: u64,
    /// Order a full resync of one store (needs --tienda): on its next sync it drops its
    /// cursor and pulls everything.
    #[arg(long, requires = "tienda")]
    pub completa: bool,
    /// The store for --completa.
    #[arg(long, requires = "completa")]
    pub tienda: Option<u64>,
}

/// Options of `serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The SQLite database file (created if missing).
    #[arg(long, env = "POS_SYNC_DB", default_value = "pos-sync.db")]
    pub db: PathBuf,
    /// Where to listen. Port 0 picks a free port; the chosen address is printed.
    #[arg(long, env = "POS_SYNC_ADDR", default_value = "127.0.0.1:8080")]
    pub addr: String,
    /// An origin allowed to call the API from a browser (repeatable; `*` for any).
    #[arg(
        long = "cors-origin",
        env = "POS_SYNC_CORS_ORIGINS",
        value_delimiter = ','
    )]
    pub cors_origins: Vec<String>,
    /// A folder to serve at `/` (the demo POS page).
    #[arg(long, env = "POS_SYNC_WWW")]
    pub www: Option<PathBuf>,
    /// A folder to serve at `/pkg/` (the built wasm package).
    #[arg(long, env = "POS_SYNC_PKG")]
    pub pkg: Option<PathBuf>,
}
