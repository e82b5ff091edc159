# Send a signed callback with curl and openssl:
#   CALLBACK_URL=… CXGEAR_CALLBACK_SECRET=… BODY='{"status":"qualified"}' sh examples/send_callback.sh
record_id="${CALLBACK_URL##*/}"
timestamp="$(date +%s)"
signature="$(printf '%s.%s.%s' "$record_id" "$timestamp" "$BODY" \
  | openssl dgst -sha256 -hmac "$CXGEAR_CALLBACK_SECRET" | sed 's/^.*= //')"
curl -sS --fail-with-body "$CALLBACK_URL" \
  -H "x-cxgear-timestamp: $timestamp" \
  -H "x-cxgear-signature: v1=$signature" \
  -H 'content-type: application/json' \
  -d "$BODY"
