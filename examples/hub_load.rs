//! Hub push throughput under load, beside raw SQLite as the physical limit.
//!
//! ```sh
//! cargo run --release --example hub_load -- [--stores 50] [--batch 100] [--rounds 20]
//! ```
//!
//! It starts the release hub binary on a fresh SQLite file (WAL, `synchronous = FULL`), seeds a
//! catalog, then runs `--stores` concurrent stores over real HTTP on loopback, each pushing
//! `--rounds` batches of `--batch` operations (half sales, half stock deltas). It reports
//! operations per second, p50/p99 push latency and the hub's resident memory afterwards; then
//! it writes the rows the hub writes for the same operations (operation records and document
//! upserts) into a fresh database with the hub's schema, through the same driver, one
//! transaction and one multi-row statement per table per `--batch`, with the same durability,
//! and reports that rate and the ratio.
//! The result is one JSON line on stdout.

#[cfg(target_arch = "wasm32")]
fn main() {}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(native::main());
}

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    use std::str::FromStr;
    use std::time::{Duration, Instant};

    use http_body_util::{BodyExt, Full};
    use hyper::body::Bytes;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    use serde_json::{json, Value};
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
    use sqlx::{ConnectOptions, Connection};

    fn arg(name: &str, default: usize) -> usize {
        let args: Vec<String> = std::env::args().collect();
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .map(|v| {
                v.parse()
                    .unwrap_or_else(|_| panic!("{name} takes a number"))
            })
            .unwrap_or(default)
    }

    fn op(store: usize, n: usize, kind: &str, doc: String, datos: Value) -> Value {
        json!({"id": uuid::Uuid::from_u128(((store as u128) << 64) | n as u128), "tienda": store,
               "coleccion": if kind == "crear" { "ventas" } else { "productos" }, "objeto_id": doc,
               "operacion": kind, "datos": datos, "reloj": format!("{:013}-{:05}-{store}", 1_733_240_000_000u64 + n as u64, 0)})
    }

    fn rss_kib(pid: u32) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    }

    pub async fn main() {
        let stores = arg("--stores", 50);
        let batch = arg("--batch", 100);
        let rounds = arg("--rounds", 20);
        let products = 500;
        let dir = std::env::temp_dir().join(format!("pos-sync-load-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bin = std::env::var("POS_SYNC_HUB_BIN")
            .unwrap_or_else(|_| "target/release/pos-sync-hub".into());
        let mut hub = Command::new(&bin)
            .args(["serve", "--db"])
            .arg(dir.join("load.db"))
            .args(["--addr", "127.0.0.1:0"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {bin}: {e} (build it with `cargo build --release`)")
            });
        let mut lines = BufReader::new(hub.stdout.take().unwrap()).lines();
        let url = loop {
            let line = lines.next().expect("the hub printed its address").unwrap();
            if let Some(u) = line.strip_prefix("pos-sync-hub listening on ") {
                break u.to_owned();
            }
        };
        let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
        let push_url = hyper::Uri::from_str(&format!("{url}/api/sincronizacion/cola/")).unwrap();
        let post = move |body: Value| {
            let request = hyper::Request::post(push_url.clone())
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(body.to_string())))
                .unwrap();
            let client = client.clone();
            async move {
                let response = client.request(request).await.expect("the hub answers");
                let status = response.status();
                let body = response.into_body().collect().await.unwrap().to_bytes();
                assert!(
                    status.is_success(),
                    "push failed: {status} {}",
                    String::from_utf8_lossy(&body)
                );
            }
        };
        let catalog: Vec<Value> = (0..products)
            .map(|p| json!({"id": uuid::Uuid::from_u128(p as u128 + 1), "tienda": 0, "coleccion": "productos", "objeto_id": format!("P{p}"),
                            "operacion": "crear", "datos": {"stock": 1_000_000}, "reloj": "1733240000000-00000-0"}))
            .collect();
        post(json!({"tienda": 0, "operaciones": catalog})).await;

        let started = Instant::now();
        let mut tasks = Vec::new();
        for store in 1..=stores {
            let post = post.clone();
            tasks.push(tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(rounds);
                let mut n = 0;
                for _ in 0..rounds {
                    let ops: Vec<Value> = (0..batch)
                        .map(|i| {
                            n += 1;
                            let product = format!("P{}", (store * 31 + n) % products);
                            if i % 2 == 0 {
                                op(
                                    store,
                                    n,
                                    "crear",
                                    format!("s{store}-{n}"),
                                    json!({"producto": product, "cantidad": 1, "importe": "9.99"}),
                                )
                            } else {
                                op(store, n, "incrementar", product, json!({"stock": -1}))
                            }
                        })
                        .collect();
                    let t = Instant::now();
                    post(json!({"tienda": store, "operaciones": ops})).await;
                    latencies.push(t.elapsed());
                }
                latencies
            }));
        }
        let mut latencies: Vec<Duration> = Vec::new();
        for t in tasks {
            latencies.extend(t.await.unwrap());
        }
        let elapsed = started.elapsed();
        latencies.sort();
        let pct = |p: f64| {
            latencies[((latencies.len() as f64 * p).ceil() as usize)
                .saturating_sub(1)
                .min(latencies.len() - 1)]
        };
        let total = stores * rounds * batch;
        let hub_rate = total as f64 / elapsed.as_secs_f64();
        let rss = rss_kib(hub.id());
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(hub.id().to_string())
            .status();
        let _ = hub.wait();

        // The physical limit: the rows the hub writes for the same operations (each
        // operation's `operaciones` row and its document's upsert), into the hub's own schema
        // and indexes, with the same durability, one transaction per batch, each table one
        // multi-row statement per batch. What the hub adds on top is HTTP, JSON, checking and
        // deciding each operation, and the sync history.
        let mut raw = SqliteConnectOptions::from_str("sqlite:")
            .unwrap()
            .filename(dir.join("raw.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .connect()
            .await
            .unwrap();
        sqlx::migrate!("./migrations").run(&mut raw).await.unwrap();
        let now = "2026-12-03T10:00:00.000Z";
        let mut seq = 0i64;
        let raw_started = Instant::now();
        for b in 0..total / batch {
            let rows: Vec<(usize, bool, String)> = (0..batch)
                .map(|i| {
                    let n = b * batch + i;
                    let sale = i % 2 == 0;
                    let doc = if sale {
                        format!("s{n}")
                    } else {
                        format!("P{}", n % products)
                    };
                    (n, sale, doc)
                })
                .collect();
            let mut tx = raw.begin().await.unwrap();
            let mut ops = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "INSERT INTO operaciones (id, tienda, coleccion, objeto_id, operacion, datos, version_base, reloj, \
                 prioridad, estado, tiene_conflicto, intentos, error, codigo, version, huella, registro, \
                 fecha_creacion, fecha_recepcion, fecha_procesamiento, datos_base, espera, conflicto) ",
            );
            ops.push_values(&rows, |mut row, (n, sale, doc)| {
                row.push_bind(uuid::Uuid::from_u128(*n as u128).to_string())
                    .push_bind((n % stores) as i64 + 1)
                    .push_bind(if *sale { "ventas" } else { "productos" })
                    .push_bind(doc)
                    .push_bind(if *sale { "crear" } else { "incrementar" })
                    .push_bind(if *sale {
                        r#"{"cantidad":1,"importe":"9.99","producto":"P1"}"#
                    } else {
                        r#"{"stock":-1}"#
                    })
                    .push_bind(0i64)
                    .push_bind(format!("{:013}-00000-1", 1_733_240_000_000u64 + *n as u64))
                    .push_bind(0i64)
                    .push_bind("aplicada")
                    .push_bind(false)
                    .push_bind(1i64)
                    .push_bind(None::<String>)
                    .push_bind(None::<String>)
                    .push_bind(1i64)
                    .push_bind(format!("{:064x}", n))
                    .push_bind(b as i64)
                    .push_bind(now)
                    .push_bind(now)
                    .push_bind(now)
                    .push_bind(None::<String>)
                    .push_bind(None::<String>)
                    .push_bind(None::<String>);
            });
            ops.build()
                .persistent(false)
                .execute(&mut *tx)
                .await
                .unwrap();
            let mut docs = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "INSERT INTO documentos (coleccion, objeto_id, version, datos, eliminado, seq, actualizado, campos, reloj) ",
            );
            // One upsert per document, as the hub keeps the last write of each in a batch.
            let mut seen = std::collections::BTreeMap::new();
            for (n, sale, doc) in &rows {
                seq += 1;
                seen.insert((*sale, doc.clone()), (*n, seq));
            }
            let mut docs_rows: Vec<_> = seen.into_iter().collect();
            docs_rows.sort_by_key(|(_, (_, s))| *s);
            docs.push_values(&docs_rows, |mut row, ((sale, doc), (n, s))| {
                row.push_bind(if *sale { "ventas" } else { "productos" })
                    .push_bind(doc)
                    .push_bind(1i64)
                    .push_bind(if *sale {
                        r#"{"cantidad":1,"importe":"9.99","producto":"P1"}"#
                    } else {
                        r#"{"stock":999999}"#
                    })
                    .push_bind(false)
                    .push_bind(*s)
                    .push_bind(now)
                    .push_bind("{}")
                    .push_bind(format!("{:013}-00000-1", 1_733_240_000_000u64 + *n as u64));
            });
            docs.push(
                " ON CONFLICT (coleccion, objeto_id) DO UPDATE SET version = version + 1, \
                 datos = excluded.datos, seq = excluded.seq, actualizado = excluded.actualizado, \
                 reloj = excluded.reloj",
            );
            docs.build()
                .persistent(false)
                .execute(&mut *tx)
                .await
                .unwrap();
            tx.commit().await.unwrap();
        }
        let raw_rate = total as f64 / raw_started.elapsed().as_secs_f64();
        let _ = std::fs::remove_dir_all(&dir);
        println!(
            "{}",
            json!({
                "stores": stores, "batch": batch, "rounds": rounds, "operations": total,
                "hub_ops_per_s": hub_rate.round(), "p50_ms": pct(0.50).as_secs_f64() * 1e3, "p99_ms": pct(0.99).as_secs_f64() * 1e3,
                "raw_sqlite_ops_per_s": raw_rate.round(), "ratio": (hub_rate / raw_rate * 100.0).round() / 100.0,
                "hub_rss_kib": rss, "durability": "SQLite WAL, synchronous=FULL",
                "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
            })
        );
    }
}
