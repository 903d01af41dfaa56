#!/bin/sh
# Sends one signed submission to Form-Bridge (docs/protocol.md, section 1).
# POSIX sh, openssl and curl.
#
#   export FORMBRIDGE_URL=http://127.0.0.1:3000 FORMBRIDGE_TENANT=acme FORMBRIDGE_SECRET=fb_...
#   sh send.sh body.json        (or: ... | sh send.sh -)
#
# The body is read from the file named, or from standard input, and sent
# exactly as signed. Optional: FORMBRIDGE_CONTENT_TYPE (default
# application/json); FORMBRIDGE_TIMESTAMP (sign at this Unix time instead of
# now) and FORMBRIDGE_DRY_RUN=1 (print the headers, send nothing), which
# together check this code against the test vector.
set -eu

: "${FORMBRIDGE_TENANT:?set FORMBRIDGE_TENANT}"
: "${FORMBRIDGE_SECRET:?set FORMBRIDGE_SECRET}"
content_type=${FORMBRIDGE_CONTENT_TYPE:-application/json}
timestamp=${FORMBRIDGE_TIMESTAMP:-$(date +%s)}

# The body goes through a file: shell variables cannot hold every byte and
# $(...) drops trailing newlines, which would change the digest.
body=$(mktemp)
answer=$(mktemp)
trap 'rm -f "$body" "$answer"' EXIT
trap 'exit 130' INT TERM
cat "${1:--}" > "$body"

digest="sha-256=:$(openssl dgst -sha256 -binary "$body" | openssl base64 -A):"
# Note: the secret is on openssl's command line, visible to other users' ps.
mac=$(printf '%s\n%s\n%s' "$timestamp" "$FORMBRIDGE_TENANT" "$digest" |
  openssl dgst -sha256 -hmac "$FORMBRIDGE_SECRET" -binary | od -An -v -tx1 | tr -d ' \n')
signature="v1=$mac"

if [ -n "${FORMBRIDGE_DRY_RUN:-}" ]; then
  printf 'Content-Digest: %s\nX-FormBridge-Timestamp: %s\nX-FormBridge-Signature: %s\n' \
    "$digest" "$timestamp" "$signature"
  exit 0
fi
: "${FORMBRIDGE_URL:?set FORMBRIDGE_URL to the API's base URL, such as http://127.0.0.1:3000}"
url="${FORMBRIDGE_URL%/}/v1/tenants/$FORMBRIDGE_TENANT/submissions"
status=$(curl -sS -o "$answer" -w '%{http_code}' \
  -H "Content-Type: $content_type" \
  -H "Content-Digest: $digest" \
  -H "X-FormBridge-Timestamp: $timestamp" \
  -H "X-FormBridge-Signature: $signature" \
  --data-binary "@$body" "$url") || { echo "cannot reach $url" >&2; exit 2; }
echo "$status"
cat "$answer"
echo
case $status in
  2??) exit 0 ;;
  *) exit 1 ;;
esac
