#!/usr/bin/env bash
# Makes a throwaway CA and certificates for trying remote workers locally (not
# for production: keep real keys in your secret store). Needs openssl.
#
#   scripts/make-certs.sh DIR [HOST_NAME_OR_IP ...]
#
# Writes DIR/ca.crt (+ ca.key), DIR/host.crt + host.key (valid for localhost,
# 127.0.0.1 and every name or IP given) and DIR/worker.crt + worker.key (a
# client certificate). The host listens with tls {cert: host.crt, key: host.key,
# ca: ca.crt}; a worker dials with --tls-cert worker.crt --tls-key worker.key --tls-ca ca.crt.
set -euo pipefail
dir="${1:?usage: make-certs.sh DIR [HOST_NAME_OR_IP ...]}"
shift
mkdir -p "$dir"
cd "$dir"
days=30
san="DNS:localhost,IP:127.0.0.1"
for name in "$@"; do
    if [[ "$name" =~ ^[0-9.]+$ || "$name" == *:* ]]; then san="$san,IP:$name"; else san="$san,DNS:$name"; fi
done
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

key ca.key
openssl req -x509 -new -key ca.key -sha256 -days "$days" -subj "/CN=titan-pm throwaway CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" -out ca.crt

leaf() { # name, extensions
    key "$1.key"
    openssl req -new -key "$1.key" -subj "/CN=titan-pm $1" -out "$1.csr"
    printf '%s\n' "$2" > "$1.ext"
    openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days "$days" -sha256 \
        -extfile "$1.ext" -out "$1.crt" 2>/dev/null
    rm -f "$1.csr" "$1.ext"
}
leaf host "subjectAltName=$san
extendedKeyUsage=serverAuth
basicConstraints=CA:FALSE"
leaf worker "subjectAltName=DNS:titan-pm-worker
extendedKeyUsage=clientAuth
basicConstraints=CA:FALSE"
rm -f ca.srl
chmod 600 ./*.key
echo "wrote $(pwd)/{ca,host,worker}.{crt,key} (host valid for $san; $days days)"
