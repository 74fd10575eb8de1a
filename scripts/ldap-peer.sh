#!/usr/bin/env bash
# An LDAP target for the tests: Debian's slapd (installed by scripts/setup.sh --test) with a
# private database in a temporary directory, on a free loopback port.
#   source scripts/ldap-peer.sh start  -> exports QM_TEST_LDAP_URL, QM_TEST_LDAPS_URL,
#                                         QM_TEST_LDAP_CA, QM_TEST_LDAP_BASE,
#                                         QM_TEST_LDAP_BIND_DN, QM_TEST_LDAP_PASSWORD,
#                                         QM_LDAP_PID, QM_LDAP_DIR
# Plain searches by others than its administrator return at most 100 entries (paged searches
# return all). It speaks TLS too: ldaps:// on a second port, and StartTLS on the first, with a server
# certificate for 127.0.0.1 (only) signed by a CA made for the run (QM_TEST_LDAP_CA, PEM).
#   scripts/ldap-peer.sh stop          (uses QM_LDAP_PID and QM_LDAP_DIR)
# The suffix holds ou=people and ou=groups; the tests add people and groups of their own.
# Sourced, it leaves the caller's shell options as it found them.
if [[ "${BASH_SOURCE[0]}" != "$0" ]]; then qm_ldap_caller_options=$(set +o); fi
set -euo pipefail

case "${1:-}" in
  start)
    if ! command -v openssl >/dev/null; then
      echo "openssl is not installed: run scripts/setup.sh --test (scripts/test.sh does)" >&2
      return 1 2>/dev/null || exit 1
    fi
    if [[ ! -x /usr/sbin/slapd ]]; then
      echo "slapd is not installed: run scripts/setup.sh --test (scripts/test.sh does)" >&2
      return 1 2>/dev/null || exit 1
    fi
    dir=$(mktemp -d /tmp/qm-ldap-XXXXXX)
    mkdir -p "$dir/db"
    base="dc=quartermaster,dc=test"
    password=$(python3 -c 'import secrets; print(secrets.token_hex(12))')
    hash=$(/usr/sbin/slappasswd -s "$password")
    # A CA for this run, and the server's certificate for 127.0.0.1 signed by it.
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=Quartermaster test CA" \
      -keyout "$dir/ca.key" -out "$dir/ca.pem" >/dev/null 2>&1
    openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout "$dir/server.key" \
      -out "$dir/server.csr" >/dev/null 2>&1
    printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >"$dir/server.ext"
    openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
      -days 2 -extfile "$dir/server.ext" -out "$dir/server.pem" >/dev/null 2>&1
    cat >"$dir/slapd.conf" <<CONF
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
pidfile $dir/slapd.pid
# As a directory server for many people does (Active Directory's MaxPageSize is 1000): a plain
# search returns at most 100 entries to anyone but the directory's administrator, a search
# with the paged-results control (RFC 2696) returns everything, a page at a time.
sizelimit size.soft=100 size.hard=100 size.prtotal=unlimited
TLSCACertificateFile $dir/ca.pem
TLSCertificateFile $dir/server.pem
TLSCertificateKeyFile $dir/server.key
modulepath /usr/lib/ldap
moduleload back_mdb
database mdb
maxsize 104857600
suffix "$base"
rootdn "cn=admin,$base"
rootpw $hash
directory $dir/db
CONF
    cat >"$dir/base.ldif" <<LDIF
dn: $base
objectClass: top
objectClass: dcObject
objectClass: organization
o: Quartermaster tests
dc: quartermaster

dn: ou=people,$base
objectClass: organizationalUnit
ou: people

dn: ou=groups,$base
objectClass: organizationalUnit
ou: groups
LDIF
    /usr/sbin/slapadd -f "$dir/slapd.conf" -l "$dir/base.ldif" >/dev/null 2>&1
    # Two free ports at once (two separate asks could be given the same one).
    read -r port tls_port < <(python3 -c 'import socket
a, b = socket.socket(), socket.socket()
a.bind(("127.0.0.1", 0)); b.bind(("127.0.0.1", 0))
print(a.getsockname()[1], b.getsockname()[1])')
    # -d 0: in the foreground (its PID is ours to stop), logging nothing.
    /usr/sbin/slapd -f "$dir/slapd.conf" -h "ldap://127.0.0.1:$port/ ldaps://127.0.0.1:$tls_port/" -d 0 >"$dir/log" 2>&1 &
    export QM_LDAP_PID=$!
    export QM_LDAP_DIR="$dir"
    ready=
    for _ in $(seq 1 100); do
      if ldapsearch -x -H "ldap://127.0.0.1:$port/" -D "cn=admin,$base" -w "$password" -b "$base" -s base dn >/dev/null 2>&1; then ready=1; break; fi
      if ! kill -0 "$QM_LDAP_PID" 2>/dev/null; then break; fi
      sleep 0.1
    done
    if [[ -z "$ready" ]]; then
      kill "$QM_LDAP_PID" 2>/dev/null || true
      cat "$dir/log" >&2
      echo "slapd did not answer on 127.0.0.1:$port" >&2
      rm -rf "$dir"
      return 1 2>/dev/null || exit 1
    fi
    export QM_TEST_LDAP_URL="ldap://127.0.0.1:$port"
    export QM_TEST_LDAPS_URL="ldaps://127.0.0.1:$tls_port"
    export QM_TEST_LDAP_CA="$dir/ca.pem"
    export QM_TEST_LDAP_BASE="$base"
    export QM_TEST_LDAP_BIND_DN="cn=admin,$base"
    export QM_TEST_LDAP_PASSWORD="$password"
    echo "LDAP target (slapd) on 127.0.0.1:$port, pid $QM_LDAP_PID"
    ;;
  stop)
    if [[ -n "${QM_LDAP_PID:-}" ]]; then
      kill "$QM_LDAP_PID" 2>/dev/null || true
      # slapd ends after it closes its database; then its files go.
      for _ in $(seq 1 50); do kill -0 "$QM_LDAP_PID" 2>/dev/null || break; sleep 0.1; done
    fi
    if [[ -n "${QM_LDAP_DIR:-}" && "$QM_LDAP_DIR" == /tmp/qm-ldap-* ]]; then rm -rf "$QM_LDAP_DIR"; fi
    ;;
  *)
    echo "usage: source scripts/ldap-peer.sh start | scripts/ldap-peer.sh stop" >&2
    exit 2
    ;;
esac
if [[ -n "${qm_ldap_caller_options:-}" ]]; then eval "$qm_ldap_caller_options"; unset qm_ldap_caller_options; fi
