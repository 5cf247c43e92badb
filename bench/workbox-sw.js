// The peer in the benchmarks: a service worker with Workbox's background-sync queue, the way a
// Workbox-based POS would queue each sale as one request and replay them when back online.
// bench/run.mjs bundles this with esbuild into www/bench/workbox-sw.js.
import { Queue } from 'workbox-background-sync';

let queue;

self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));

function sale(i, hub) {
  const body = {
    tienda: 3,
    operaciones: [{ id: crypto.randomUUID(), tienda: 3, coleccion: 'ventas', objeto_id: `w${i}`, operacion: 'crear',
      datos: { producto: `P${i % 2000}`, cantidad: 1, importe: '9.99', fecha: '2026-12-03' }, reloj: `${Date.now()}-00000-3` }],
  };
  return new Request(`${hub}/api/sincronizacion/cola/`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
}

self.addEventListener('message', (event) => {
  const port = event.ports[0];
  const { cmd, n, hub, name } = event.data;
  event.waitUntil((async () => {
    try {
      if (cmd === 'push') {
        // forceSyncFallback and a no-op onSync: nothing replays until asked, as while offline.
        queue = new Queue(name, { forceSyncFallback: true, onSync: async () => {} });
        const t = performance.now();
        for (let i = 0; i < n; i += 1) await queue.pushRequest({ request: sale(i, hub) });
        port.postMessage({ ms: performance.now() - t, size: await queue.size() });
      } else if (cmd === 'replay') {
        const t = performance.now();
        await queue.replayRequests();
        port.postMessage({ ms: performance.now() - t, size: await queue.size() });
      }
    } catch (e) {
      port.postMessage({ error: String(e) });
    }
  })());
});
