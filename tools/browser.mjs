// Launches Debian's headless Chromium (never a downloaded browser): through playwright-core
// for tests that drive a page, or on its own, with no automation client attached, for
// benchmarks (see `detachedPage`).
import { spawn, execFileSync } from 'node:child_process';
import { createServer } from 'node:http';
import { chromium } from 'playwright-core';
import { endWithThisProcess, tempDir } from './children.mjs';

export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

const FLAGS = ['--no-sandbox', '--headless', '--disable-gpu', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'];

export function launchBrowser() {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS });
}

/** The browser's version, as `chromium --version` prints it (`156.0.8078.114`). */
export function chromiumVersion() {
  const text = execFileSync(CHROMIUM, ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  return /(\d+(\.\d+)+)/.exec(text)?.[1] ?? text.trim();
}

/**
 * Opens `url` in a Chromium of its own with no automation client attached, and calls
 * functions of the page's `window.bench` from node, one at a time, as `page.evaluate` would.
 *
 * Why: a client attached over the DevTools protocol (playwright) is sent an event for every
 * request the page makes, bodies included, and its node process and the browser spend CPU on
 * them while the page works: during a drain of 10,000 operations (20 pushes of ~150 KB) node
 * alone used 110–220 ms of CPU per 600 ms drain on this two-core machine, against 10 ms idle.
 * A till in a shop has no such client, so the benchmarks time the page without one.
 *
 * The page asks node for its next call with a long-polling `GET {collector}/next` and posts
 * each result to `{collector}/result` (cross-origin: the collector answers with CORS headers).
 * Resolves with { call(fn, args), close() }.
 */
export async function detachedPage(pageUrl, { timeoutMs = 600_000 } = {}) {
  const waiting = []; // the page's pending `next` requests
  const queued = []; // calls not yet handed to the page
  let pending = null; // { resolve, reject } of the call in progress
  const server = createServer((req, res) => {
    res.setHeader('access-control-allow-origin', '*');
    if (req.method === 'GET' && req.url === '/next') {
      if (queued.length) res.end(JSON.stringify(queued.shift()));
      else waiting.push(res);
      return;
    }
    if (req.method === 'POST' && req.url === '/result') {
      let body = '';
      req.on('data', (d) => { body += d; });
      req.on('end', () => {
        res.end('ok');
        const done = pending;
        pending = null;
        if (!done) return;
        try {
          const msg = JSON.parse(body);
          if (msg.error) done.reject(new Error(`in the page: ${msg.error}`));
          else done.resolve(msg.result);
        } catch (e) {
          done.reject(e);
        }
      });
      return;
    }
    res.statusCode = 404;
    res.end();
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const collector = `http://127.0.0.1:${server.address().port}`;
  const profile = tempDir('pos-sync-chromium-');
  const url = new URL(pageUrl);
  url.searchParams.set('collector', collector);
  // A process group of its own, so closing ends the browser's helper processes too. Its
  // temporary files (the profile's singleton socket directory, which a browser ended by a
  // signal leaves behind) go inside the profile, which close() removes.
  const child = spawn(CHROMIUM, [...FLAGS, `--user-data-dir=${profile.path}`, url.toString()],
    { stdio: 'ignore', detached: true, env: { ...process.env, TMPDIR: profile.path } });
  endWithThisProcess(child, { group: true });
  let exited = null;
  child.once('exit', (code) => {
    exited = code;
    pending?.reject(new Error(`chromium exited (${code})`));
    pending = null;
  });

  function call(fn, args = []) {
    if (exited !== null) return Promise.reject(new Error(`chromium exited (${exited})`));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => { pending = null; reject(new Error(`${fn} took over ${timeoutMs} ms`)); }, timeoutMs);
      pending = {
        resolve: (v) => { clearTimeout(timer); resolve(v); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      };
      const task = { fn, args };
      const res = waiting.shift();
      if (res) res.end(JSON.stringify(task));
      else queued.push(task);
    });
  }

  async function close() {
    for (const res of waiting.splice(0)) res.end(JSON.stringify({ fn: null }));
    if (exited === null) {
      const gone = new Promise((resolve) => child.once('exit', resolve));
      process.kill(-child.pid, 'SIGTERM');
      await gone;
    }
    server.closeAllConnections?.();
    await new Promise((resolve) => server.close(resolve));
    profile.remove();
  }

  return { call, close };
}
