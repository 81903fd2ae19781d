#!/bin/sh
# Development PKI for edge-agent's mutual TLS (issue 19): NOT for production.
#
#   scripts/dev-pki.sh <out-dir> [agent-id ...]
#
# Makes, with the openssl CLI, all keys ECDSA P-256, all certificates X.509 v3:
#   ca.pem / ca.key               the fleet CA (10 years)
#   collector.pem / collector.key the collector, SAN IP:127.0.0.1 and DNS:localhost
#   <id>.pem / <id>.key           one client certificate per agent id given
#                                 (default: agent-1 agent-2); subject CN = agent id,
#                                 the name the collector binds the Hello's agent_id to
#   expired.pem / expired.key     CN=expired-agent, valid only in the past (test case)
#   rogue-ca.pem, rogue.pem/.key  CN=agent-1 signed by another CA (test case)
# Agent ids must be printable ASCII without '/' or ',' (they become a CN).
set -eu
out=${1:?usage: dev-pki.sh <out-dir> [agent-id ...]}
shift
[ $# -gt 0 ] || set -- agent-1 agent-2
mkdir -p "$out"
cd "$out"

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

# ca <name> <cn>
ca() {
    key "$1.key"
    openssl req -x509 -new -key "$1.key" -sha256 -days 3650 -subj "/CN=$2" \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
        -out "$1.pem" 2>/dev/null
}

# leaf <name> <cn> <ca> <extensions> [openssl x509 date options]
leaf() {
    name=$1 cn=$2 issuer=$3 ext=$4
    shift 4
    key "$name.key"
    openssl req -new -key "$name.key" -subj "/CN=$cn" -out "$name.csr" 2>/dev/null
    printf '%s\n' "$ext" > "$name.ext"
    openssl x509 -req -in "$name.csr" -CA "$issuer.pem" -CAkey "$issuer.key" -CAcreateserial -sha256 \
        -extfile "$name.ext" "$@" -out "$name.pem" 2>/dev/null
    rm -f "$name.csr" "$name.ext"
}

client_ext='basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth'
server_ext='basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost'

ca ca "edge-agent dev CA"
leaf collector edge-collector ca "$server_ext" -days 825
for id in "$@"; do
    leaf "$id" "$id" ca "$client_ext" -days 825
done
# Expired: valid 2001-2002. `openssl x509 -req` cannot backdate (before 3.4),
# so this one goes through `openssl ca` with a throwaway database.
key expired.key
openssl req -new -key expired.key -subj "/CN=expired-agent" -out expired.csr 2>/dev/null
mkdir -p .ca-db && : > .ca-db/index.txt && echo 1000 > .ca-db/serial
cat > .ca-db/ca.cnf <<CNF
[ca]
default_ca = dev
[dev]
database = .ca-db/index.txt
serial = .ca-db/serial
new_certs_dir = .ca-db
default_md = sha256
policy = any
unique_subject = no
[any]
commonName = supplied
[client]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
CNF
openssl ca -batch -config .ca-db/ca.cnf -cert ca.pem -keyfile ca.key -extensions client \
    -startdate 20010101000000Z -enddate 20020101000000Z -in expired.csr -out expired.pem -notext 2>/dev/null
rm -rf .ca-db expired.csr
# A certificate for agent-1 from a CA the collector does not trust.
ca rogue-ca "rogue CA"
leaf rogue agent-1 rogue-ca "$client_ext" -days 825
rm -f ./*.srl
echo "dev PKI in $(pwd): ca.pem collector.pem $* expired.pem rogue.pem"
