// {{name}}: a healthprobe probe in JavaScript. Sends one GET with the standard `fetch`
// (which healthprobe serves through wasi:http, under the operator's network policy and the
// run's deadline) and checks the status code.
//
//   ./build.sh && healthprobe run {{name}}.wasm url=http://127.0.0.1:8080/health
//
// Built with componentize-js against the WIT package in wit/. The same file runs under
// Node for the native tests (test.mjs): Node has `fetch` too.

export function describe() {
  return {
    name: '{{name}}',
    version: '0.1.0',
    description: 'Checks that a URL answers with the expected status.',
    params: [
      { name: 'url', description: 'The URL to request, for example http://127.0.0.1:8080/health.', required: true, default: undefined, repeatable: false },
      { name: 'expect-status', description: 'The status code that means healthy, for example 204.', required: false, default: '200', repeatable: false },
    ],
  };
}

// The host fills in declared defaults, and names them in `defaulted`.
export async function check(params, defaulted, budgetMs) {
  const p = new Map(params);
  const url = p.get('url');
  const expected = Number(p.get('expect-status'));
  if (!Number.isInteger(expected)) {
    // A bad parameter is the operator's mistake: an error naming it (exit 3).
    throw { tag: 'invalid-param', val: { name: 'expect-status', reason: 'expected a status code such as 200' } };
  }
  let response;
  try {
    response = await fetch(url);
  } catch (e) {
    // No answer at all is a verdict too: unhealthy, with the reason.
    return { status: 'unhealthy', message: `${url}: ${e.message ?? e}`, details: [] };
  }
  // A detail's value is typed: { tag: 'text' | 'integer' (a BigInt) | 'number' | 'flag', val }.
  const details = [['status', { tag: 'integer', val: BigInt(response.status) }]];
  if (response.status === expected) {
    return { status: 'healthy', message: `HTTP ${response.status} from ${url}`, details };
  }
  return { status: 'unhealthy', message: `HTTP ${response.status} from ${url} (expected ${expected})`, details };
}
