# Send a signed callback with curl and openssl (the Standard Webhooks scheme):
#   CALLBACK_URL=… CALLBACK_SECRET=whsec_… BODY='{"status":"qualified"}' sh examples/send_callback.sh
# WEBHOOK_ID names the event (a redelivery with the same id is taken once); random by default.
set -eu
msg_id="${WEBHOOK_ID:-msg_$(openssl rand -hex 16)}"
timestamp="$(date +%s)"
# The key is the base64 after `whsec_`, decoded; openssl takes it as hex.
key="$(printf '%s' "${CALLBACK_SECRET#whsec_}" | openssl base64 -d -A | od -An -v -tx1 | tr -d ' \n')"
signature="$(printf '%s.%s.%s' "$msg_id" "$timestamp" "$BODY" \
  | openssl dgst -sha256 -mac HMAC -macopt "hexkey:$key" -binary | openssl base64 -A)"
curl -sS --fail-with-body "$CALLBACK_URL" \
  -H "webhook-id: $msg_id" \
  -H "webhook-timestamp: $timestamp" \
  -H "webhook-signature: v1,$signature" \
  -H 'content-type: application/json' \
  --data-binary "$BODY"
