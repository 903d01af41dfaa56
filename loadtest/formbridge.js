// Form-Bridge load tests: signed submissions against the local gateway
// (`formbridge serve`) or a deployed stack. Every request is signed as
// docs/protocol.md, section 1 says, with k6/crypto: Content-Digest over the exact
// body bytes, HMAC-SHA256 over "{timestamp}\n{tenant_id}\n{content_digest}".
//
// SCENARIO (default steady):
//   smoke    a short check: 10 s at RATE (default 500/s) over every tenant,
//            with INVALID_SHARE (default 5%) of invalid requests
//   steady   RATE/s (default 1000) for DURATION (default 30s)
//   spike    ramping-arrival-rate: RATE for 10 s, up to SPIKE_RATE (2x RATE)
//            in 5 s, held 10 s, back to RATE for 10 s
//   tenants  every tenant of TENANTS_FILE, HOT_SHARE (default 50%) of the
//            traffic to the first one, the rest spread evenly
//   large    PAYLOAD_BYTES (default 200000) bodies at RATE (default 50/s)
//   invalid  steady traffic with INVALID_SHARE (default 10%) of requests
//            signed wrongly, stale, or with a tampered body
//
// TARGET selects the thresholds (default local):
//   local     this machine, k6 on the same cores: p99 <= P99_MS (20) ms for
//             valid requests, no failed request, nothing dropped
//   deployed  a deployed stack: p95 <= 100 ms, p99 <= 250 ms, failed < 0.1%
// Either way, every invalid request must be refused with its expected
// status (403 bad signature, 403 stale, 401 tampered body): the
// `invalid_misjudged` count must be 0.
//
// Tenants: TENANTS_FILE (a JSON array of tenant records, as `formbridge
// serve --tenants` reads; the first signing secret of each is used), or
// TENANT and SECRET for one. BASE_URL defaults to http://127.0.0.1:3000.
// PAYLOAD_BYTES sets the body size for every scenario (default ~100 bytes).
import http from 'k6/http';
import crypto from 'k6/crypto';
import { check } from 'k6';
import { Counter, Rate } from 'k6/metrics';

const env = (name, fallback) => (__ENV[name] === undefined || __ENV[name] === '' ? fallback : __ENV[name]);
const number = (name, fallback) => {
  const value = Number(env(name, fallback));
  if (!Number.isFinite(value) || value < 0) {
    throw new Error(`${name} must be a non-negative number, not ${__ENV[name]}`);
  }
  return value;
};

const SCENARIO = env('SCENARIO', 'steady');
const TARGET = env('TARGET', 'local');
const BASE_URL = env('BASE_URL', 'http://127.0.0.1:3000').replace(/\/+$/, '');
const DEFAULT_RATE = { smoke: 500, large: 50 }[SCENARIO] || (TARGET === 'deployed' ? 500 : 1000);
const RATE = number('RATE', DEFAULT_RATE);
const DURATION = env('DURATION', SCENARIO === 'smoke' ? '10s' : '30s');
const SPIKE_RATE = number('SPIKE_RATE', RATE * 2);
const HOT_SHARE = number('HOT_SHARE', 0.5);
const DEFAULT_INVALID = { smoke: 0.05, invalid: 0.1 }[SCENARIO] || 0;
const INVALID_SHARE = number('INVALID_SHARE', DEFAULT_INVALID);
const PAYLOAD_BYTES = number('PAYLOAD_BYTES', SCENARIO === 'large' ? 200000 : 0);
const P99_MS = number('P99_MS', 20);

if (!['smoke', 'steady', 'spike', 'tenants', 'large', 'invalid'].includes(SCENARIO)) {
  throw new Error(`SCENARIO must be smoke, steady, spike, tenants, large or invalid, not ${SCENARIO}`);
}
if (!['local', 'deployed'].includes(TARGET)) {
  throw new Error(`TARGET must be local or deployed, not ${TARGET}`);
}
if (INVALID_SHARE >= 1 || HOT_SHARE > 1) {
  throw new Error('INVALID_SHARE must be under 1 and HOT_SHARE at most 1');
}

// [{id, secret}], from a tenants file or TENANT/SECRET.
const TENANTS = (() => {
  const file = env('TENANTS_FILE', '');
  if (file) {
    const records = JSON.parse(open(file));
    const tenants = records
      .filter((r) => r.status !== 'suspended')
      .map((r) => ({ id: r.tenant_id, secret: r.signing_secrets[0] }));
    if (tenants.length === 0) throw new Error(`${file} has no active tenant`);
    return tenants;
  }
  const secret = env('SECRET', '');
  if (!secret) throw new Error("set TENANTS_FILE, or TENANT and SECRET (the tenant's signing secret)");
  return [{ id: env('TENANT', 'demo'), secret }];
})();

// Bodies of PAYLOAD_BYTES are built once: a JSON object with a filler
// field, the per-request fields prepended.
const FILLER = PAYLOAD_BYTES > 0 ? 'x'.repeat(Math.max(0, PAYLOAD_BYTES - 120)) : '';

function vus(rate) {
  return { preAllocatedVUs: Math.max(50, Math.ceil(rate / 20)), maxVUs: Math.max(200, Math.ceil(rate)) };
}

function validScenario() {
  const rate = RATE * (1 - INVALID_SHARE);
  if (SCENARIO === 'spike') {
    return {
      executor: 'ramping-arrival-rate',
      startRate: rate,
      timeUnit: '1s',
      stages: [
        { target: rate, duration: '10s' },
        { target: SPIKE_RATE, duration: '5s' },
        { target: SPIKE_RATE, duration: '10s' },
        { target: rate, duration: '5s' },
        { target: rate, duration: '10s' },
      ],
      ...vus(SPIKE_RATE),
      exec: 'valid',
    };
  }
  return { executor: 'constant-arrival-rate', rate, timeUnit: '1s', duration: DURATION, ...vus(rate), exec: 'valid' };
}

const scenarios = { valid: validScenario() };
if (INVALID_SHARE > 0) {
  const rate = Math.max(1, Math.round(RATE * INVALID_SHARE));
  scenarios.invalid = { executor: 'constant-arrival-rate', rate, timeUnit: '1s', duration: DURATION, ...vus(rate), exec: 'invalid' };
}

const thresholds = {
  // Invalid requests refused with anything but their expected status.
  invalid_misjudged: ['count==0'],
  checks: ['rate==1'],
};
if (TARGET === 'local') {
  thresholds['http_req_duration{kind:valid}'] = [`p(99)<=${P99_MS}`];
  thresholds.http_req_failed = ['rate==0'];
  thresholds.dropped_iterations = ['count==0'];
} else {
  thresholds['http_req_duration{kind:valid}'] = ['p(95)<=100', 'p(99)<=250'];
  thresholds.http_req_failed = ['rate<0.001'];
  thresholds.checks = ['rate>0.999'];
}

export const options = {
  discardResponseBodies: true,
  scenarios,
  thresholds,
  summaryTrendStats: ['avg', 'min', 'med', 'p(95)', 'p(99)', 'max'],
};

const invalidMisjudged = new Counter('invalid_misjudged');
const invalidRefused = new Rate('invalid_refused_as_expected');
const accepted202 = http.expectedStatuses(202);

function pickTenant() {
  if (TENANTS.length === 1) return TENANTS[0];
  if (SCENARIO === 'tenants' && Math.random() < HOT_SHARE) return TENANTS[0];
  const others = SCENARIO === 'tenants' ? TENANTS.slice(1) : TENANTS;
  return others[Math.floor(Math.random() * others.length)];
}

function body() {
  const fields = { email: 'ada@example.com', message: 'Hello from k6', vu: __VU, iteration: __ITER };
  if (FILLER) fields.filler = FILLER;
  return JSON.stringify(fields);
}

function sign(tenant, payload, timestamp, secret) {
  const digest = `sha-256=:${crypto.sha256(payload, 'base64')}:`;
  const signature = crypto.hmac('sha256', secret, `${timestamp}\n${tenant.id}\n${digest}`, 'hex');
  return {
    'Content-Type': 'application/json',
    'Content-Digest': digest,
    'X-FormBridge-Timestamp': `${timestamp}`,
    'X-FormBridge-Signature': `v1=${signature}`,
  };
}

function url(tenant) {
  return `${BASE_URL}/v1/tenants/${tenant.id}/submissions`;
}

export function valid() {
  const tenant = pickTenant();
  const payload = body();
  const headers = sign(tenant, payload, Math.floor(Date.now() / 1000), tenant.secret);
  const response = http.post(url(tenant), payload, {
    headers,
    tags: { kind: 'valid', tenant: SCENARIO === 'tenants' && tenant === TENANTS[0] ? 'hot' : 'other' },
    responseCallback: accepted202,
  });
  check(response, { 'valid: accepted (202)': (r) => r.status === 202 });
}

// Three ways to be wrong, in turn; each has exactly one right answer.
const WRONG = [
  {
    kind: 'bad_signature',
    status: 403,
    expected: http.expectedStatuses(403),
    request: (tenant, payload, now) => ({ payload, headers: sign(tenant, payload, now, `${tenant.secret}-wrong`) }),
  },
  {
    kind: 'stale',
    status: 403,
    expected: http.expectedStatuses(403),
    request: (tenant, payload, now) => ({ payload, headers: sign(tenant, payload, now - 3600, tenant.secret) }),
  },
  {
    kind: 'tampered',
    status: 401,
    expected: http.expectedStatuses(401),
    // Signed over the original body; a different body is sent.
    request: (tenant, payload, now) => ({
      payload: payload.replace('Hello', 'Hellp'),
      headers: sign(tenant, payload, now, tenant.secret),
    }),
  },
];

export function invalid() {
  const wrong = WRONG[__ITER % WRONG.length];
  const tenant = pickTenant();
  const { payload, headers } = wrong.request(tenant, body(), Math.floor(Date.now() / 1000));
  const response = http.post(url(tenant), payload, {
    headers,
    tags: { kind: wrong.kind },
    responseCallback: wrong.expected,
  });
  const right = response.status === wrong.status;
  invalidRefused.add(right, { kind: wrong.kind });
  if (!right) invalidMisjudged.add(1, { kind: wrong.kind, status: `${response.status}` });
}
