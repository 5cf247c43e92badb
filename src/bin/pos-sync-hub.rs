//! The hub's thin main: parse the command line, set up logging, run the command.

// A push allocates and frees strings and maps for every operation; mimalloc does that in a
// fraction of the system allocator's instructions (a fifth of the hub's work under load).
#[cfg(not(target_arch = "wasm32"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(not(target_arch = "wasm32"))]
#[tokio::main]
async fn main() -> std::process::ExitCode {
    use clap::Parser;
    use pos_sync::hub::cli::{Cli, Command};
    use pos_sync::hub::{app, run, shutdown_signal, AppState, HubOptions};
    use std::io::Write;
    use tracing_subscriber::EnvFilter;

    let cli = Cli::parse();
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if cli.log_json {
        logs.json().init();
    } else {
        logs.init();
    }

    match cli.command {
        Command::Serve(args) => {
            let Some(db) = open_db(&args.db).await else {
                return std::process::ExitCode::FAILURE;
            };
            let listener = match tokio::net::TcpListener::bind(&args.addr).await {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("pos-sync-hub: cannot listen on {}: {e}", args.addr);
                    return std::process::ExitCode::FAILURE;
                }
            };
            let options = HubOptions {
                cors_origins: args.cors_origins,
                www: args.www,
                pkg: args.pkg,
            };
            let state = AppState::new(db);
            let db = state.db.clone();
            let router = app(state, &options);
            let addr = listener
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or(args.addr);
            let db_path = std::fs::canonicalize(&args.db).unwrap_or(args.db);
            // Machine-readable lines for scripts that start the hub on port 0.
            println!("pos-sync-hub listening on http://{addr}");
            println!("pos-sync-hub database {}", db_path.display());
            let _ = std::io::stdout().flush();
            tracing::info!(%addr, db = %db_path.display(), "hub started");
            if let Err(e) = run(listener, router, shutdown_signal()).await {
                eprintln!("pos-sync-hub: server error: {e}");
                return std::process::ExitCode::FAILURE;
            }
            db.close().await;
            tracing::info!("hub stopped");
            std::process::ExitCode::SUCCESS
        }
        Command::Sincronizar(args) => sincronizar(args).await,
    }
}

/// `sincronizar`: process the hub-side queue once, or as a daemon; or order a full resync.
#[cfg(not(target_arch = "wasm32"))]
async fn sincronizar(args: pos_sync::hub::cli::SyncArgs) -> std::process::ExitCode {
    use pos_sync::hub::shutdown_signal;
    use std::process::ExitCode;

    if !args.db.exists() {
        eprintln!("pos-sync-hub: no database at {}", args.db.display());
        return ExitCode::FAILURE;
    }
    let Some(db) = open_db(&args.db).await else {
        return std::process::ExitCode::FAILURE;
    };
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    };
    if let (true, Some(store)) = (args.completa, args.tienda) {
        return match db.order_full_resync(store).await {
            Ok(generation) => {
                println!(
                    "{}",
                    serde_json::json!({"tienda": store, "resync": generation})
                );
                db.close().await;
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("pos-sync-hub: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let stop = shutdown_signal();
    tokio::pin!(stop);
    loop {
        match db.process_queue(None, now()).await {
            Ok(run) => println!("{}", serde_json::to_string(&run).unwrap_or_default()),
            Err(e) => {
                eprintln!("pos-sync-hub: processing the queue failed: {e}");
                if !args.continuo {
                    return ExitCode::FAILURE;
                }
            }
        }
        if !args.continuo {
            break;
        }
        // A signal ends the wait at once; a pass under way always finishes first.
        tokio::select! {
            _ = &mut stop => break,
            _ = tokio::time::sleep(std::time::Duration::from_secs(args.intervalo)) => {}
        }
    }
    db.close().await;
    ExitCode::SUCCESS
}

/// Opens the hub's database, saying on stderr why it could not.
#[cfg(not(target_arch = "wasm32"))]
async fn open_db(path: &std::path::Path) -> Option<pos_sync::hub::Db> {
    match pos_sync::hub::Db::open(path).await {
        Ok(db) => Some(db),
        Err(e) => {
            eprintln!(
                "pos-sync-hub: cannot open the database {}: {e}",
                path.display()
            );
            None
        }
    }
}

#[cfg(target_arch = "wasm32")]
fn main() {}
