#!/usr/bin/env node
// Sends one signed submission to Form-Bridge (docs/protocol.md, section 1).
// Node.js 20 or later, built-in modules only.
//
//   export FORMBRIDGE_URL=http://127.0.0.1:3000 FORMBRIDGE_TENANT=acme FORMBRIDGE_SECRET=fb_...
//   node send.mjs body.json        (or: ... | node send.mjs -)
//
// The body is read from the file named, or from standard input, and sent
// exactly as signed. Optional: FORMBRIDGE_CONTENT_TYPE (default
// application/json); FORMBRIDGE_TIMESTAMP (sign at this Unix time instead
// of now) and FORMBRIDGE_DRY_RUN=1 (print the headers, send nothing), which
// together check this code against the test vector.
import { createHash, createHmac } from "node:crypto";
import { readFileSync } from "node:fs";

function sign(secret, tenant, body, timestamp) {
  const digest = `sha-256=:${createHash("sha256").update(body).digest("base64")}:`;
  const mac = createHmac("sha256", secret).update(`${timestamp}\n${tenant}\n${digest}`);
  return {
    "Content-Digest": digest,
    "X-FormBridge-Timestamp": timestamp,
    "X-FormBridge-Signature": `v1=${mac.digest("hex")}`,
  };
}

const env = process.env;
for (const name of ["FORMBRIDGE_TENANT", "FORMBRIDGE_SECRET"]) {
  if (!env[name]) {
    console.error(`set ${name}`);
    process.exit(2);
  }
}
const file = process.argv[2] ?? "-";
const body = readFileSync(file === "-" ? 0 : file); // raw bytes, never re-encoded
const timestamp = env.FORMBRIDGE_TIMESTAMP || String(Math.floor(Date.now() / 1000));
const headers = sign(env.FORMBRIDGE_SECRET, env.FORMBRIDGE_TENANT, body, timestamp);

if (env.FORMBRIDGE_DRY_RUN) {
  for (const [name, value] of Object.entries(headers)) console.log(`${name}: ${value}`);
  process.exit(0);
}
if (!env.FORMBRIDGE_URL) {
  console.error("set FORMBRIDGE_URL to the API's base URL, such as http://127.0.0.1:3000");
  process.exit(2);
}
const tenant = encodeURIComponent(env.FORMBRIDGE_TENANT);
const url = `${env.FORMBRIDGE_URL.replace(/\/+$/, "")}/v1/tenants/${tenant}/submissions`;
let response;
try {
  response = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": env.FORMBRIDGE_CONTENT_TYPE || "application/json", ...headers },
    body,
  });
} catch (error) {
  console.error(`cannot reach ${url}: ${error.cause?.message ?? error.message}`);
  process.exit(2);
}
console.log(response.status);
console.log(await response.text());
process.exit(response.ok ? 0 : 1);
