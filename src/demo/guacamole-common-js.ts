import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

/**
 * Path of guacamole-common-js's ES module build (the one a browser can `import`). Resolved
 * through Node's own lookup so it is found wherever npm put the package (hoisted or not); its
 * `exports` map only names the CommonJS file for require(), so the ESM sibling is derived from it.
 */
export function guacamoleCommonJsPath(): string {
  const cjs = createRequire(import.meta.url).resolve('guacamole-common-js');
  return join(dirname(dirname(cjs)), 'esm', 'guacamole-common.js');
}
