#!/bin/sh
# Makes a CA and a serving certificate for the tenant-dns injector with
# openssl, stores them in the Secret the Deployment mounts, and patches the
# CA into the caBundle of the MutatingWebhookConfiguration and of the
# ValidatingWebhookConfiguration (both named by --webhook).
#
# Usage: deploy/scripts/gen-certs.sh [--namespace NS] [--service NAME]
#          [--secret NAME] [--webhook NAME] [--days N] [--out DIR] [--no-apply]
#
#   --out DIR    keep ca.crt, ca.key, tls.crt, tls.key there (default: a temp dir, removed)
#   --no-apply   only make the files (implies keeping them; needs --out)
#
# Re-run it before the certificate expires (default 365 days): the injector
# re-reads the Secret's files when the kubelet updates them.
set -eu

namespace=tenant-dns-system
service=tenant-dns-injector
secret=tenant-dns-injector-tls
webhook=tenant-dns-injector
days=365
out=
apply=1

while [ $# -gt 0 ]; do
  case "$1" in
    --namespace) namespace=$2; shift 2 ;;
    --service) service=$2; shift 2 ;;
    --secret) secret=$2; shift 2 ;;
    --webhook) webhook=$2; shift 2 ;;
    --days) days=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --no-apply) apply=0; shift ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "gen-certs.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

if [ "$apply" = 0 ] && [ -z "$out" ]; then
  echo "gen-certs.sh: --no-apply needs --out DIR" >&2
  exit 2
fi
command -v openssl >/dev/null || { echo "gen-certs.sh: openssl not found" >&2; exit 1; }
if [ "$apply" = 1 ]; then
  command -v kubectl >/dev/null || { echo "gen-certs.sh: kubectl not found" >&2; exit 1; }
fi

if [ -n "$out" ]; then
  mkdir -p "$out"
  dir=$out
else
  dir=$(mktemp -d)
  trap 'rm -rf "$dir"' EXIT
fi
umask 077

host="$service.$namespace.svc"
cat > "$dir/server.cnf" <<CNF
[req]
distinguished_name = dn
prompt = no
[dn]
CN = $host
[ext]
subjectAltName = DNS:$host, DNS:$host.cluster.local, DNS:$service.$namespace, DNS:$service
extendedKeyUsage = serverAuth
keyUsage = critical, digitalSignature, keyEncipherment
basicConstraints = critical, CA:FALSE
CNF

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout "$dir/ca.key" -out "$dir/ca.crt" -days "$days" \
  -subj "/CN=tenant-dns injector CA" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout "$dir/tls.key" -out "$dir/server.csr" -config "$dir/server.cnf" 2>/dev/null
openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
  -out "$dir/tls.crt" -days "$days" -extfile "$dir/server.cnf" -extensions ext 2>/dev/null
openssl verify -CAfile "$dir/ca.crt" "$dir/tls.crt" >/dev/null
rm -f "$dir/server.csr" "$dir/ca.srl"

if [ "$apply" = 0 ]; then
  echo "gen-certs.sh: wrote $dir/ca.crt, $dir/tls.crt and $dir/tls.key for $host"
  exit 0
fi

ca_bundle=$(openssl base64 -A < "$dir/ca.crt")
kubectl -n "$namespace" create secret tls "$secret" --cert="$dir/tls.crt" --key="$dir/tls.key" \
  --dry-run=client -o yaml | kubectl apply -f -
# One operation per webhook entry: the validating configuration has two (pods, rendered ConfigMaps).
bundle_op() { printf '{"op":"add","path":"/webhooks/%s/clientConfig/caBundle","value":"%s"}' "$1" "$ca_bundle"; }
kubectl patch mutatingwebhookconfiguration "$webhook" --type=json -p "[$(bundle_op 0)]"
kubectl patch validatingwebhookconfiguration "$webhook" --type=json -p "[$(bundle_op 0),$(bundle_op 1)]"

echo "gen-certs.sh: Secret $namespace/$secret updated and caBundle of both $webhook webhook configurations patched"
