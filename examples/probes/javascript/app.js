// A healthprobe probe in JavaScript: checks a Spring Boot style health document
// (`/actuator/health`, or any JSON with "status" and "components"), fetched with the
// standard `fetch`, which the host serves through wasi:http under the same network policy
// and deadline as every other request.
//
// Healthy when the status is UP; degraded when it is UP but a component is not (for
// example OUT_OF_SERVICE or UNKNOWN); unhealthy when it is not UP, naming the components
// that are DOWN. Built with componentize-js against `healthprobe wit` (see build.sh).

export function describe() {
  return {
    name: 'actuator-health',
    version: '0.1.0',
    description: 'Checks a Spring Boot style JSON health document and names the components that are not UP (JavaScript, fetch).',
    params: [
      { name: 'url', description: 'URL of the health document, for example http://127.0.0.1:8080/actuator/health.', required: true, default: undefined, repeatable: false },
      { name: 'up', description: 'The status word that means healthy.', required: false, default: 'UP', repeatable: false },
    ],
  };
}

// Every component's status, depth first: "db", "diskSpace", "redis.primary", ...
function componentStatuses(doc, prefix, out) {
  for (const [name, value] of Object.entries(doc.components ?? {})) {
    const path = prefix ? `${prefix}.${name}` : name;
    if (value && typeof value.status === 'string') out.push([path, value.status]);
    if (value && value.components) componentStatuses(value, path, out);
  }
  return out;
}

// `defaulted` names the parameters whose declared default the host filled in.
export async function check(params, defaulted, budgetMs) {
  const p = new Map(params);
  const url = p.get('url');
  const up = p.get('up');
  let response;
  try {
    response = await fetch(url, { headers: { accept: 'application/json' } });
  } catch (e) {
    return { status: 'unhealthy', message: `${url}: ${e.message ?? e}`, details: [] };
  }
  let doc;
  try {
    doc = await response.json();
  } catch (e) {
    return { status: 'unhealthy', message: `HTTP ${response.status} from ${url}, not JSON`, details: [] };
  }
  const overall = String(doc.status ?? 'missing');
  const components = componentStatuses(doc, '', []);
  const notUp = components.filter(([, s]) => s !== up);
  // A detail's value is typed: { tag: 'text' | 'integer' (a BigInt) | 'number' | 'flag', val }.
  const text = (val) => ({ tag: 'text', val });
  const details = [
    ['status', text(overall)],
    ['http-status', { tag: 'integer', val: BigInt(response.status) }],
    ...components.map(([n, s]) => [`component.${n}`, text(s)]),
  ];
  if (overall !== up) {
    const down = notUp.map(([n, s]) => `${n} ${s}`).join(', ');
    return { status: 'unhealthy', message: `${overall}${down ? `: ${down}` : ''} (HTTP ${response.status})`, details };
  }
  if (notUp.length > 0) {
    return { status: 'degraded', message: `${up}, but ${notUp.map(([n, s]) => `${n} ${s}`).join(', ')}`, details };
  }
  return { status: 'healthy', message: `${up} (${components.length} components)`, details };
}
