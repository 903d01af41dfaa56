// Signed submissions at a constant arrival rate against the local gateway
// (`formbridge serve`). Every request is signed as contract section 1 says:
// Content-Digest over the exact body, HMAC-SHA256 over
// "{timestamp}\n{tenant_id}\n{content_digest}".
//
// Environment: BASE_URL (default http://127.0.0.1:3000), TENANT, SECRET,
// RATE (requests per second, default 1000), DURATION (default 30s),
// P99_MS (the p99 threshold in milliseconds, default 20).
import http from 'k6/http';
import crypto from 'k6/crypto';
import { check } from 'k6';

const BASE_URL = __ENV.BASE_URL || 'http://127.0.0.1:3000';
const TENANT = __ENV.TENANT || 'demo';
const SECRET = __ENV.SECRET;
const RATE = parseInt(__ENV.RATE || '1000', 10);
const DURATION = __ENV.DURATION || '30s';
const P99_MS = parseInt(__ENV.P99_MS || '20', 10);

if (!SECRET) {
  throw new Error('set SECRET to the tenant\'s signing secret');
}

export const options = {
  discardResponseBodies: true,
  scenarios: {
    steady: {
      executor: 'constant-arrival-rate',
      rate: RATE,
      timeUnit: '1s',
      duration: DURATION,
      preAllocatedVUs: Math.max(50, Math.ceil(RATE / 20)),
      maxVUs: Math.max(200, RATE),
    },
  },
  thresholds: {
    http_req_failed: ['rate==0'],
    http_req_duration: [`p(99)<=${P99_MS}`],
    dropped_iterations: ['count==0'],
  },
  summaryTrendStats: ['avg', 'min', 'med', 'p(95)', 'p(99)', 'max'],
};

const URL = `${BASE_URL}/v1/tenants/${TENANT}/submissions`;

export default function () {
  const body = JSON.stringify({
    email: 'ada@example.com',
    message: 'Hello from k6',
    vu: __VU,
    iteration: __ITER,
  });
  const timestamp = Math.floor(Date.now() / 1000).toString();
  const digest = `sha-256=:${crypto.sha256(body, 'base64')}:`;
  const signature = crypto.hmac('sha256', SECRET, `${timestamp}\n${TENANT}\n${digest}`, 'hex');
  const response = http.post(URL, body, {
    headers: {
      'Content-Type': 'application/json',
      'Content-Digest': digest,
      'X-FormBridge-Timestamp': timestamp,
      'X-FormBridge-Signature': `v1=${signature}`,
    },
  });
  check(response, { 'accepted (202)': (r) => r.status === 202 });
}
