#!/usr/bin/env bash
# Makes a throw-away CA and a server certificate it signed, for 127.0.0.1 and localhost: for TLS
# clients that refuse a CA certificate as the server's own (rustls: CaUsedAsEndEntity).
#   tests/peers/make_pki.sh DIR    ->  DIR/ca.pem (trust this), DIR/cert.pem + DIR/key.pem (serve these)
set -euo pipefail
dir="${1:?usage: make_pki.sh DIR}"
mkdir -p "$dir"
cd "$dir"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj "/CN=mcpspy test CA" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" -keyout ca.key -out ca.pem 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=localhost" \
    -keyout key.pem -out server.csr 2>/dev/null
printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" \
    "extendedKeyUsage=serverAuth" "subjectAltName=DNS:localhost,IP:127.0.0.1" >server.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
    -extfile server.ext -out cert.pem 2>/dev/null
openssl verify -CAfile ca.pem cert.pem >/dev/null
echo "make_pki: $dir/ca.pem $dir/cert.pem $dir/key.pem"
