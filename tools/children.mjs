// Child processes that must not outlive the script that started them: a benchmark or a test
// stopped by Ctrl-C, by a timeout's SIGTERM, or by an uncaught error ends them too. (A
// Chromium started in a process group of its own, as `detachedPage` starts it, would
// otherwise keep running after Ctrl-C, and a hub after a SIGTERM sent to node alone.)

/** pid → whether it leads a process group of its own. */
const live = new Map();
let installed = false;

function endAll() {
  for (const [pid, group] of live) {
    try {
      process.kill(group ? -pid : pid, 'SIGTERM');
    } catch {
      // Already gone.
    }
  }
  live.clear();
}

/**
 * Ends `child` (with its process group, when `group`: spawned `detached`) if this process
 * exits or is stopped by SIGINT, SIGTERM or SIGHUP while the child still runs.
 */
export function endWithThisProcess(child, { group = false } = {}) {
  if (!installed) {
    installed = true;
    process.on('exit', endAll);
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
      process.once(signal, () => {
        endAll();
        // The listener is gone: the signal now does what it does by default.
        process.kill(process.pid, signal);
      });
    }
  }
  live.set(child.pid, group);
  child.once('exit', () => live.delete(child.pid));
}
