// Native tests: `node --test` (build.sh runs them first). The probe's own `check` runs
// under Node against a server on loopback.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { test } from 'node:test';

import { check, describe } from './app.js';

async function server(status) {
  const s = createServer((req, res) => { res.writeHead(status); res.end(); });
  await new Promise((ready) => s.listen(0, '127.0.0.1', ready));
  return { url: `http://127.0.0.1:${s.address().port}/health`, close: () => s.close() };
}

test('the expected status is healthy, any other is not', async () => {
  const ok = await server(200);
  // As the host calls it: the declared default filled in, and named.
  const given = (url) => [['url', url], ['expect-status', '200']];
  assert.equal((await check(given(ok.url), ['expect-status'], 2000)).status, 'healthy');
  ok.close();
  const down = await server(503);
  const r = await check(given(down.url), ['expect-status'], 2000);
  assert.equal(r.status, 'unhealthy');
  assert.match(r.message, /HTTP 503 .* \(expected 200\)/);
  down.close();
});

test('parameters are documented and checked', async () => {
  assert.deepEqual(describe().params.map((p) => p.name), ['url', 'expect-status']);
  await assert.rejects(check([['url', 'http://127.0.0.1:9/'], ['expect-status', 'OK']], [], 2000),
    (e) => e.tag === 'invalid-param' && e.val.name === 'expect-status');
});
