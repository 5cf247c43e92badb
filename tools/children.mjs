// Child processes and temporary directories that must not outlive the script that made them:
// a benchmark or a test stopped by Ctrl-C, by a timeout's SIGTERM, or by an uncaught error
// ends its children and removes its directories too. (A Chromium started in a process group
// of its own, as `detachedPage` starts it, would otherwise keep running after Ctrl-C, a hub
// after a SIGTERM sent to node alone, and a benchmark's browser profile, tens of megabytes,
// would stay behind.)
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Running children → whether each leads a process group of its own. */
const live = new Map();
/** Directories to remove when this process ends early. */
const dirs = new Set();
let installed = false;

function signalAll(signal) {
  for (const [child, group] of live) {
    try {
      process.kill(group ? -child.pid : child.pid, signal);
    } catch {
      // Already gone.
    }
  }
}

/** Removes a directory; a child that just ended may still be writing its last files there. */
function removeDir(path) {
  rmSync(path, { recursive: true, force: true, maxRetries: 20, retryDelay: 100 });
}

function removeDirs() {
  for (const dir of dirs) removeDir(dir);
  dirs.clear();
}

function install() {
  if (installed) return;
  installed = true;
  // An exit (an uncaught error, or process.exit) cannot wait: children are asked to end and
  // the directories removed at once.
  process.on('exit', () => {
    signalAll('SIGTERM');
    removeDirs();
  });
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.once(signal, async () => {
      // Children get up to 3 s to end (a browser writes its last files), then are killed;
      // then the directories go, and the signal does what it does by default.
      const ended = [...live.keys()].map((child) => new Promise((resolve) => child.once('exit', resolve)));
      signalAll('SIGTERM');
      await Promise.race([Promise.all(ended), new Promise((resolve) => setTimeout(resolve, 3000))]);
      signalAll('SIGKILL');
      removeDirs();
      process.kill(process.pid, signal);
    });
  }
}

/**
 * Ends `child` (with its process group, when `group`: spawned `detached`) if this process
 * exits or is stopped by SIGINT, SIGTERM or SIGHUP while the child still runs.
 */
export function endWithThisProcess(child, { group = false } = {}) {
  install();
  live.set(child, group);
  child.once('exit', () => live.delete(child));
}

/**
 * A new temporary directory, `{prefix}` and a random suffix in the system's temporary
 * directory: `{ path, remove() }`. It is removed by `remove()`, or, should this process exit
 * or be stopped by a signal first, on its way out.
 */
export function tempDir(prefix) {
  install();
  const path = mkdtempSync(join(tmpdir(), prefix));
  dirs.add(path);
  return {
    path,
    remove() {
      removeDir(path);
      dirs.delete(path);
    },
  };
}
