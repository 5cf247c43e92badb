// The setup the browser tests share: a hub on a fresh database and a headless Chromium.
import { join } from 'node:path';
import { startHub } from './hub-process.mjs';
import { launchBrowser } from './browser.mjs';
import { tempDir } from './children.mjs';

/**
 * Runs `body({ hub, browser, dir })` with a hub serving www/ and pkg/ on a new database in a
 * temporary directory (`pos-sync-{name}-*`, the file `{name}.db`) and a headless Chromium;
 * afterwards, whatever happened, closes the browser, stops the hub and removes the directory.
 * Resolves with what `body` resolves with.
 */
export async function withHubAndBrowser(name, body) {
  const dir = tempDir(`pos-sync-${name}-`);
  let hub;
  let browser;
  try {
    hub = await startHub({ dbPath: join(dir.path, `${name}.db`) });
    browser = await launchBrowser();
    return await body({ hub, browser, dir: dir.path });
  } finally {
    await browser?.close();
    await hub?.stop();
    dir.remove();
  }
}
