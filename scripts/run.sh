#!/usr/bin/env bash
# The main job: install what is missing, build the engine (pkg/) and the hub, start the hub on
# its embedded SQLite default, seed the demo catalog on first run, and serve the demo till.
#   POS_SYNC_DB (default pos-sync.db) and POS_SYNC_ADDR (default 127.0.0.1:8080) choose the
#   database file and the address. Ctrl-C stops the hub gracefully.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh
bash scripts/build.sh

export POS_SYNC_DB="${POS_SYNC_DB:-pos-sync.db}"
export POS_SYNC_ADDR="${POS_SYNC_ADDR:-127.0.0.1:8080}"
target/release/pos-sync-hub serve --www www --pkg pkg &
hub=$!
trap 'kill -TERM "$hub" 2>/dev/null || true; wait "$hub" || true; exit 0' INT TERM
url="http://$POS_SYNC_ADDR"
node -e '
  const url = process.argv[1];
  (async () => {
    for (let i = 0; i < 100; i++) {
      try { if ((await fetch(url + "/api/salud/")).ok) return; } catch {}
      await new Promise((r) => setTimeout(r, 100));
    }
    console.error("the hub did not answer at " + url); process.exit(1);
  })();' "$url"
node tools/seed-catalog.mjs --hub "$url"
cat <<MSG

  pos-sync is running.
    demo till (store 1):  $url/
    another store:        $url/?tienda=2
    admin (conflicts, configuration): $url/admin/
    hub API:              $url/api/sincronizacion/cola/
    database:             $POS_SYNC_DB
  In Chromium DevTools (Network > Offline) go offline, sell, and go back online:
  the pending count drains to 0 by itself. Ctrl-C stops the hub.

MSG
wait "$hub"
