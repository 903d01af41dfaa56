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
//   isolation  what one tenant, or an anonymous caller, does to the others.
//            The tenants file's first tenant is hot (HOT_FACTOR, 10, times
//            NORMAL_RATE), the second slow (its endpoint answers late:
//            SLOW_RATE requests/s plus one batch of SLOW_BURST submissions
//            at SLOW_BURST_AT), the rest normal (NORMAL_RATE each, default
//            20/s). Meanwhile JUNK_RATE (150/s) requests for random unknown
//            tenant IDs (x<random>), fresh and well formed but signed with
//            no secret. Junk starts at once; the tenants START_AFTER (2 s)
//            later, the normal ones one second apart, so each is looked up
//            for the first time under the flood. DURATION is the whole run.
//   sources  RATE/s Stripe deliveries through each tenant's `stripe` source
//            (POST /v1/tenants/{id}/sources/stripe, Stripe-Signature over
//            "{t}.{body}"), each a new event ID; every REPLAY_EVERY-th
//            (default 10) delivery is the VU's previous event sent again,
//            signed afresh as Stripe retries, which must get the same
//            submission_ids (`replay_mismatch` 0) and publish nothing. With
//            INVALID_SHARE (default 5%), deliveries signed with a wrong
//            secret or 10 minutes old, each refused 401.
//   soak     RATE/s (default 1000) for DURATION (default 10m), each
//            submission to a tenant of one class, chosen at random:
//            FAILING_SHARE (default 10%) to a `failing-*` tenant (its
//            endpoint answers 5xx), SLOW_SHARE (default 1%) to a `slow-*`
//            one (its endpoint answers late), the rest to a `fast-*` one;
//            the class is the tenant ID's prefix (loadtest/run-local names
//            them so). Every request must be accepted (202): the failures
//            are the deliveries', which run-local checks.
//
// TARGET selects the thresholds (default local):
//   local     this machine, k6 on the same cores: p99 <= P99_MS (20) ms for
//             valid requests, no failed request, nothing dropped
//   deployed  a deployed stack: p95 <= 100 ms, p99 <= 250 ms, failed < 0.1%
// Either way, every invalid request must be refused with its expected
// status (403 bad signature, 403 stale, 401 tampered body): the
// `invalid_misjudged` count must be 0. In `isolation`, the latency
// threshold applies to the normal tenants' requests (class:normal), every
// tenant's request must get 202 and every junk request 403
// (`unexpected_status` 0 for each class); the delivery thresholds are
// loadtest/run-local's, from the receivers.
//
// Tenants: TENANTS_FILE (a JSON array of tenant records, as `formbridge
// serve --tenants` reads; the first signing secret of each is used, and in
// `sources` the first secret of its source `stripe`), or TENANT and SECRET
// for one. BASE_URL defaults to http://127.0.0.1:3000.
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
const DURATION = env('DURATION', { smoke: '10s', soak: '10m' }[SCENARIO] || '30s');
const SPIKE_RATE = number('SPIKE_RATE', RATE * 2);
const HOT_SHARE = number('HOT_SHARE', 0.5);
const DEFAULT_INVALID = { smoke: 0.05, invalid: 0.1, sources: 0.05 }[SCENARIO] || 0;
const INVALID_SHARE = number('INVALID_SHARE', DEFAULT_INVALID);
const PAYLOAD_BYTES = number('PAYLOAD_BYTES', SCENARIO === 'large' ? 200000 : 0);
const P99_MS = number('P99_MS', 20);
const NORMAL_RATE = number('NORMAL_RATE', 20);
const HOT_FACTOR = number('HOT_FACTOR', 10);
const SLOW_RATE = number('SLOW_RATE', 2);
const SLOW_BURST = number('SLOW_BURST', 40);
const JUNK_RATE = number('JUNK_RATE', 150);
const REPLAY_EVERY = number('REPLAY_EVERY', 10);
const FAILING_SHARE = number('FAILING_SHARE', 0.1);
const SLOW_SHARE = number('SLOW_SHARE', 0.01);

const SCENARIOS = ['smoke', 'steady', 'spike', 'tenants', 'large', 'invalid', 'isolation', 'sources', 'soak'];
if (!SCENARIOS.includes(SCENARIO)) {
  throw new Error(`SCENARIO must be one of ${SCENARIOS.join(', ')}, not ${SCENARIO}`);
}
if (SCENARIO === 'isolation' && SLOW_BURST > 100) {
  throw new Error('SLOW_BURST is one batch: at most 100 submissions');
}

// A k6 duration ("30s", "1m", "1m30s", "90") in seconds.
function seconds(name, fallback) {
  const text = env(name, fallback);
  const parts = /^(?:(\d+)m)?(?:(\d+)s?)?$/.exec(text);
  if (!parts || text === '') throw new Error(`${name} must be a duration such as 30s or 1m30s, not ${text}`);
  return Number(parts[1] || 0) * 60 + Number(parts[2] || 0);
}
if (!['local', 'deployed'].includes(TARGET)) {
  throw new Error(`TARGET must be local or deployed, not ${TARGET}`);
}
if (INVALID_SHARE >= 1 || HOT_SHARE > 1) {
  throw new Error('INVALID_SHARE must be under 1 and HOT_SHARE at most 1');
}
if (FAILING_SHARE + SLOW_SHARE > 1) {
  throw new Error('FAILING_SHARE and SLOW_SHARE together must be at most 1');
}

// [{id, secret}], from a tenants file or TENANT/SECRET.
const TENANTS = (() => {
  const file = env('TENANTS_FILE', '');
  if (file) {
    const records = JSON.parse(open(file));
    const tenants = records
      .filter((r) => r.status !== 'suspended')
      .map((r) => ({
        id: r.tenant_id,
        secret: r.signing_secrets[0],
        stripe: r.sources && r.sources.stripe ? r.sources.stripe.secrets[0] : undefined,
      }));
    if (SCENARIO === 'sources' && tenants.some((t) => !t.stripe)) {
      throw new Error(`the sources scenario needs a source "stripe" (provider stripe) in every tenant of ${file}`);
    }
    if (tenants.length === 0) throw new Error(`${file} has no active tenant`);
    return tenants;
  }
  const secret = env('SECRET', '');
  if (!secret) throw new Error("set TENANTS_FILE, or TENANT and SECRET (the tenant's signing secret)");
  return [{ id: env('TENANT', 'demo'), secret }];
})();

// The soak scenario's tenants by class, from their IDs' prefixes.
const SOAK_CLASSES = ['fast', 'slow', 'failing'];
const SOAK_TENANTS = (() => {
  if (SCENARIO !== 'soak') return {};
  const byClass = {};
  for (const c of SOAK_CLASSES) byClass[c] = TENANTS.filter((t) => t.id.startsWith(`${c}-`));
  const shares = { fast: 1 - FAILING_SHARE - SLOW_SHARE, slow: SLOW_SHARE, failing: FAILING_SHARE };
  for (const c of SOAK_CLASSES) {
    if (shares[c] > 0 && byClass[c].length === 0) {
      throw new Error(`the soak scenario sends ${shares[c]} of its traffic to ${c}-* tenants, and the tenants file has none`);
    }
  }
  return byClass;
})();

// Bodies of PAYLOAD_BYTES are built once: a JSON object with a filler
// field, the per-request fields prepended.
const FILLER = PAYLOAD_BYTES > 0 ? 'x'.repeat(Math.max(0, PAYLOAD_BYTES - 120)) : '';

function vus(rate) {
  return { preAllocatedVUs: Math.max(50, Math.ceil(rate / 20)), maxVUs: Math.max(200, Math.ceil(rate)) };
}

// The isolation scenario runs one k6 scenario per tenant: fewer VUs each,
// as requests take milliseconds.
function fewVus(rate) {
  return { preAllocatedVUs: Math.max(5, Math.ceil(rate / 10)), maxVUs: Math.max(50, Math.ceil(rate / 2)) };
}

// Tenant roles in the isolation scenario, by position in the file: hot
// (index 0), slow (1), normal (the rest).
const SLOW = TENANTS[1];
const NORMAL = TENANTS.slice(2);
const CLASSES = ['normal', 'hot', 'slow', 'junk'];

function isolationScenarios() {
  if (TENANTS.length < 3) {
    throw new Error('the isolation scenario needs at least 3 tenants: hot, slow, and normal ones');
  }
  const total = seconds('DURATION', '30s');
  const startAfter = seconds('START_AFTER', '2s');
  const burstAt = seconds('SLOW_BURST_AT', '10s');
  const lastStart = startAfter + NORMAL.length - 1;
  if (total < lastStart + 5 || burstAt >= total) {
    throw new Error(`DURATION (${total} s) must leave every tenant 5 s after its start (${lastStart} s) and the burst (SLOW_BURST_AT ${burstAt} s)`);
  }
  // From `start` to the end, calling `exec`; `index` is the tenant's.
  const steady = (rate, start, exec, role, index) => ({
    executor: 'constant-arrival-rate',
    rate,
    timeUnit: '1s',
    startTime: `${start}s`,
    duration: `${total - start}s`,
    ...fewVus(rate),
    exec,
    env: index === undefined ? {} : { TENANT_INDEX: `${index}` },
    tags: { class: role },
  });
  const all = {
    junk: steady(JUNK_RATE, 0, 'junk', 'junk'),
    hot: steady(NORMAL_RATE * HOT_FACTOR, startAfter, 'tenant', 'hot', 0),
  };
  if (SLOW_RATE > 0) all.slow = steady(SLOW_RATE, startAfter, 'tenant', 'slow', 1);
  if (SLOW_BURST > 0) {
    all.slow_burst = {
      executor: 'shared-iterations',
      vus: 1,
      iterations: 1,
      startTime: `${burstAt}s`,
      exec: 'slowBurst',
      tags: { class: 'slow' },
    };
  }
  NORMAL.forEach((tenant, i) => {
    all[`normal_${i + 1}`] = steady(NORMAL_RATE, startAfter + i, 'tenant', 'normal', i + 2);
  });
  return all;
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
  const exec = { sources: 'stripeDelivery', soak: 'soakSubmission' }[SCENARIO] || 'valid';
  return { executor: 'constant-arrival-rate', rate, timeUnit: '1s', duration: DURATION, ...vus(rate), exec };
}

const scenarios = SCENARIO === 'isolation' ? isolationScenarios() : { valid: validScenario() };
if (INVALID_SHARE > 0) {
  const rate = Math.max(1, Math.round(RATE * INVALID_SHARE));
  const exec = SCENARIO === 'sources' ? 'invalidStripeDelivery' : 'invalid';
  scenarios.invalid = { executor: 'constant-arrival-rate', rate, timeUnit: '1s', duration: DURATION, ...vus(rate), exec };
}

const thresholds = {
  // Invalid requests refused with anything but their expected status.
  invalid_misjudged: ['count==0'],
  checks: ['rate==1'],
};
if (SCENARIO === 'sources') {
  // A provider's retry answered with other IDs than the first delivery's.
  thresholds.replay_mismatch = ['count==0'];
}
if (SCENARIO === 'soak') {
  // Each class's accepted count in the summary, for run-local to compare
  // with what each class's receivers got and the dead letters.
  for (const c of SOAK_CLASSES) thresholds[`submissions_accepted{class:${c}}`] = [];
}
if (SCENARIO === 'isolation') {
  // Every class's latency and accepted count in the summary (an empty
  // list only adds the sub-metric); the latency threshold is on the
  // normal tenants', the ones that must not notice the others.
  for (const c of CLASSES) {
    thresholds[`unexpected_status{class:${c}}`] = ['count==0'];
    thresholds[`http_req_duration{class:${c}}`] = c === 'normal' ? [`p(99)<=${P99_MS}`] : [];
    thresholds[`submissions_accepted{class:${c}}`] = [];
  }
}
if (TARGET === 'local') {
  if (SCENARIO !== 'isolation') thresholds['http_req_duration{kind:valid}'] = [`p(99)<=${P99_MS}`];
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
const unexpectedStatus = new Counter('unexpected_status');
const submissionsAccepted = new Counter('submissions_accepted');
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

// The soak scenario: one submission to a tenant of a class drawn by share.
export function soakSubmission() {
  const draw = Math.random();
  const role = draw < FAILING_SHARE ? 'failing' : draw < FAILING_SHARE + SLOW_SHARE ? 'slow' : 'fast';
  const tenants = SOAK_TENANTS[role];
  const target = tenants[Math.floor(Math.random() * tenants.length)];
  const payload = body();
  const response = http.post(url(target), payload, {
    headers: sign(target, payload, Math.floor(Date.now() / 1000), target.secret),
    tags: { kind: 'valid', class: role },
    responseCallback: accepted202,
  });
  if (check(response, { 'soak: accepted (202)': (r) => r.status === 202 })) {
    submissionsAccepted.add(1, { class: role });
  } else {
    unexpectedStatus.add(1, { class: role, status: `${response.status}` });
  }
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

// The isolation scenario. A tenant's steady traffic: one submission a
// request, to the tenant at TENANT_INDEX of the file.
export function tenant() {
  const index = Number(__ENV.TENANT_INDEX);
  const role = index === 0 ? 'hot' : index === 1 ? 'slow' : 'normal';
  postSubmissions(TENANTS[index], role, body(), 1);
}

// One batch of SLOW_BURST submissions from the slow tenant: more than the
// gateway's delivery slots (DELIVERY_CONCURRENCY, 32), so without a cap
// per destination it would take them all for its endpoint's delay.
export function slowBurst() {
  const batch = [];
  for (let i = 0; i < SLOW_BURST; i += 1) batch.push(JSON.parse(body()));
  postSubmissions(SLOW, 'slow', JSON.stringify(batch), SLOW_BURST);
}

function postSubmissions(target, role, payload, count) {
  const headers = sign(target, payload, Math.floor(Date.now() / 1000), target.secret);
  const response = http.post(url(target), payload, {
    headers,
    tags: { kind: 'tenant', class: role },
    responseCallback: accepted202,
  });
  const ok = check(response, { [`${role}: accepted (202)`]: (r) => r.status === 202 });
  if (ok) {
    submissionsAccepted.add(count, { class: role });
  } else {
    unexpectedStatus.add(1, { class: role, status: `${response.status}` });
  }
}

const expected403 = http.expectedStatuses(403);
const ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';

function randomText(length, alphabet) {
  let text = '';
  for (let i = 0; i < length; i += 1) text += alphabet[Math.floor(Math.random() * alphabet.length)];
  return text;
}

// A request an attacker can make without any secret: a random tenant ID
// that does not exist, a fresh timestamp, the right digest, and a
// signature of the right shape. The only right answer is 403.
export function junk() {
  const target = { id: `x${randomText(15, ALPHABET)}` };
  const payload = body();
  const headers = {
    'Content-Type': 'application/json',
    'Content-Digest': `sha-256=:${crypto.sha256(payload, 'base64')}:`,
    'X-FormBridge-Timestamp': `${Math.floor(Date.now() / 1000)}`,
    'X-FormBridge-Signature': `v1=${randomText(64, '0123456789abcdef')}`,
  };
  const response = http.post(url(target), payload, {
    headers,
    tags: { kind: 'junk', class: 'junk' },
    responseCallback: expected403,
  });
  if (!check(response, { 'junk: refused (403)': (r) => r.status === 403 })) {
    unexpectedStatus.add(1, { class: 'junk', status: `${response.status}` });
  }
}

// The sources scenario: Stripe deliveries through each tenant's source
// `stripe`, signed as Stripe signs them (docs/protocol.md, section 9).
const replayMismatch = new Counter('replay_mismatch');
const replaysAnswered = new Counter('replays_answered');
let previous = null; // this VU's last accepted delivery: {tenant, payload, ids}

function stripeHeaders(secret, payload, timestamp) {
  const signature = crypto.hmac('sha256', secret, `${timestamp}.${payload}`, 'hex');
  return { 'Content-Type': 'application/json', 'Stripe-Signature': `t=${timestamp},v1=${signature}` };
}

function sourceUrl(tenant) {
  return `${BASE_URL}/v1/tenants/${tenant.id}/sources/stripe`;
}

function stripeEvent() {
  const id = `evt_k6${__VU}x${__ITER}x${randomText(12, ALPHABET)}`;
  const object = { id: `cs_${randomText(16, ALPHABET)}`, customer_email: 'ada@example.com', amount_total: 2000 };
  if (FILLER) object.filler = FILLER;
  return JSON.stringify({ id, object: 'event', type: 'checkout.session.completed', data: { object } });
}

export function stripeDelivery() {
  const replay = previous !== null && REPLAY_EVERY > 0 && __ITER % REPLAY_EVERY === REPLAY_EVERY - 1;
  const tenant = replay ? previous.tenant : pickTenant();
  const payload = replay ? previous.payload : stripeEvent();
  const headers = stripeHeaders(tenant.stripe, payload, Math.floor(Date.now() / 1000));
  const response = http.post(sourceUrl(tenant), payload, {
    headers,
    responseType: 'text',
    tags: { kind: 'valid', class: replay ? 'replay' : 'new' },
    responseCallback: accepted202,
  });
  const ok = check(response, { 'source: accepted (202)': (r) => r.status === 202 });
  if (!ok) return;
  const ids = JSON.parse(response.body).submission_ids.join(',');
  if (replay) {
    replaysAnswered.add(1);
    if (ids !== previous.ids || response.headers['Idempotent-Replayed'] !== 'true') replayMismatch.add(1);
    previous = null;
  } else {
    previous = { tenant, payload, ids };
  }
}

const WRONG_DELIVERIES = [
  { kind: 'source_wrong_secret', sign: (tenant, payload, now) => stripeHeaders(`${tenant.stripe}-wrong`, payload, now) },
  { kind: 'source_stale', sign: (tenant, payload, now) => stripeHeaders(tenant.stripe, payload, now - 600) },
];
const expected401 = http.expectedStatuses(401);

export function invalidStripeDelivery() {
  const wrong = WRONG_DELIVERIES[__ITER % WRONG_DELIVERIES.length];
  const tenant = pickTenant();
  const payload = stripeEvent();
  const response = http.post(sourceUrl(tenant), payload, {
    headers: wrong.sign(tenant, payload, Math.floor(Date.now() / 1000)),
    tags: { kind: wrong.kind },
    responseCallback: expected401,
  });
  const right = response.status === 401;
  invalidRefused.add(right, { kind: wrong.kind });
  if (!right) invalidMisjudged.add(1, { kind: wrong.kind, status: `${response.status}` });
}
