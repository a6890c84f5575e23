#!/bin/sh
# A development TLS certificate for nginx: a throw-away CA and a server certificate it signs, for
# localhost and 127.0.0.1 (plus any names given), valid 30 days. Nothing here is secret to a
# repository: the keys are made on the machine that uses them and never committed.
#
#   docker/tls/make-certificate.sh [DIR] [NAME...]     DIR defaults to docker/tls/ (git-ignored)
#
# Writes DIR/ca.pem (trust this one: browser, curl --cacert, NODE_EXTRA_CA_CERTS), DIR/cert.pem
# and DIR/key.pem (nginx's ssl_certificate and ssl_certificate_key). docker compose mounts
# docker/tls/; `npm run cluster` makes its own in its scratch directory.
set -eu
dir=${1:-$(dirname "$0")}
[ $# -gt 0 ] && shift
command -v openssl >/dev/null 2>&1 || { echo "make-certificate: openssl not found (apt-get install openssl)" >&2; exit 1; }
mkdir -p "$dir"
names="DNS:localhost,IP:127.0.0.1"
for name in "$@"; do names="$names,DNS:$name"; done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
serial() { od -An -N8 -tx1 /dev/urandom | tr -d ' \n'; }
curve="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1"

# shellcheck disable=SC2086 # $curve is several words on purpose
openssl req -x509 $curve -nodes -days 30 -set_serial "0x$(serial)" \
  -subj "/CN=stomp-relay development CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -keyout "$work/ca.key" -out "$dir/ca.pem" 2>/dev/null
# shellcheck disable=SC2086
openssl req $curve -nodes -subj "/CN=localhost" -keyout "$dir/key.pem" -out "$work/server.csr" 2>/dev/null
printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' \
  "$names" >"$work/server.ext"
openssl x509 -req -days 30 -set_serial "0x$(serial)" -in "$work/server.csr" \
  -CA "$dir/ca.pem" -CAkey "$work/ca.key" -extfile "$work/server.ext" -out "$dir/cert.pem" 2>/dev/null
chmod 600 "$dir/key.pem"
echo "make-certificate: $dir/cert.pem for $names, signed by $dir/ca.pem (valid 30 days)"
