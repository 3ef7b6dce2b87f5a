#!/usr/bin/env bash
# Makes a throw-away self-signed certificate for 127.0.0.1 and localhost, for the TLS test peers.
#   tests/peers/make_cert.sh DIR    ->  DIR/cert.pem, DIR/key.pem (valid 2 days)
set -euo pipefail
dir="${1:?usage: make_cert.sh DIR}"
mkdir -p "$dir"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj "/CN=127.0.0.1" -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
    -keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null
echo "make_cert: $dir/cert.pem $dir/key.pem"
