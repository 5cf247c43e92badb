// Starts and stops a pos-sync hub process for scripts and tests.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { endWithThisProcess } from './children.mjs';

/** The hub binary: POS_SYNC_HUB_BIN, else the release build, else the debug build. */
export function hubBinary() {
  const candidates = [process.env.POS_SYNC_HUB_BIN, 'target/release/pos-sync-hub', 'target/debug/pos-sync-hub'];
  const bin = candidates.find((c) => c && existsSync(c));
  if (!bin) throw new Error('no hub binary: run scripts/build.sh (or cargo build) first');
  return bin;
}

/**
 * Starts `pos-sync-hub serve` on a free loopback port with the given database file, serving
 * www/ and pkg/. Resolves with { url, dbPath, stop() } once it listens.
 */
export function startHub({ dbPath, www = 'www', pkg = 'pkg', extraArgs = [] }) {
  const args = ['serve', '--db', dbPath, '--addr', '127.0.0.1:0', '--www', www, '--pkg', pkg, ...extraArgs];
  const child = spawn(hubBinary(), args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, RUST_LOG: process.env.RUST_LOG || 'warn' } });
  endWithThisProcess(child);
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  return new Promise((resolve, reject) => {
    let url;
    let path = dbPath;
    const lines = createInterface({ input: child.stdout });
    lines.on('line', (line) => {
      const listening = /^pos-sync-hub listening on (\S+)/.exec(line);
      const database = /^pos-sync-hub database (.+)$/.exec(line);
      if (listening) url = listening[1];
      if (database) path = database[1];
      if (url && database) {
        resolve({
          url,
          dbPath: path,
          process: child,
          stop: () => new Promise((done) => {
            if (child.exitCode !== null) return done(child.exitCode);
            child.once('exit', (code) => done(code));
            child.kill('SIGTERM');
          }),
        });
      }
    });
    child.once('exit', (code) => reject(new Error(`the hub exited (${code}) before listening:\n${stderr}`)));
    child.once('error', reject);
  });
}
