#!/bin/sh
# Makes a serving certificate for the tenant-dns injector with openssl, signed
# by a CA of its own that it keeps across runs, stores the certificate, its key
# and the CA certificate (tls.crt, tls.key, ca.crt) in the Secret the
# Deployment mounts, and patches the CA into the caBundle of the
# MutatingWebhookConfiguration and of the ValidatingWebhookConfiguration (both
# named by --webhook).
#
# Usage: deploy/scripts/gen-certs.sh [--namespace NS] [--service NAME]
#          [--secret NAME] [--webhook NAME] [--days N] [--ca-days N]
#          [--out DIR] [--new-ca] [--no-apply]
#
#   --out DIR    where ca.crt, ca.key, tls.crt, tls.key are kept (default:
#                ${XDG_STATE_HOME:-~/.local/state}/tenant-dns/NS-SERVICE)
#   --days N     validity of the serving certificate (default 365)
#   --ca-days N  validity of a new CA (default 3650)
#   --new-ca     replace the CA (the caBundle then holds the new and the old one)
#   --no-apply   only make the files
#
# A CA already in DIR is reused: a run issues a new serving certificate and key
# only, so the caBundle the API server trusts stays the same. Re-run it before
# the certificate expires: the injector re-reads the Secret's files when the
# kubelet updates them.
set -eu

namespace=tenant-dns-system
service=tenant-dns-injector
secret=tenant-dns-injector-tls
webhook=tenant-dns-injector
days=365
ca_days=3650
out=
new_ca=0
apply=1

while [ $# -gt 0 ]; do
  case "$1" in
    --namespace) namespace=$2; shift 2 ;;
    --service) service=$2; shift 2 ;;
    --secret) secret=$2; shift 2 ;;
    --webhook) webhook=$2; shift 2 ;;
    --days) days=$2; shift 2 ;;
    --ca-days) ca_days=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --new-ca) new_ca=1; shift ;;
    --no-apply) apply=0; shift ;;
    -h|--help) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "gen-certs.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

command -v openssl >/dev/null || { echo "gen-certs.sh: openssl not found" >&2; exit 1; }
if [ "$apply" = 1 ]; then
  command -v kubectl >/dev/null || { echo "gen-certs.sh: kubectl not found" >&2; exit 1; }
fi

dir=${out:-${XDG_STATE_HOME:-$HOME/.local/state}/tenant-dns/$namespace-$service}
umask 077
mkdir -p "$dir"

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

# The CA: kept when there is one, so the trust anchor survives a new serving certificate.
old_ca=
if [ -s "$dir/ca.key" ] && [ -s "$dir/ca.crt" ] && [ "$new_ca" = 0 ]; then
  if ! openssl x509 -in "$dir/ca.crt" -noout -checkend $((days * 86400)) >/dev/null; then
    echo "gen-certs.sh: the CA in $dir expires within the $days days of a new certificate; run with --new-ca" >&2
    exit 1
  fi
  echo "gen-certs.sh: reusing the CA in $dir"
else
  [ -s "$dir/ca.crt" ] && old_ca=$(cat "$dir/ca.crt")
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$dir/ca.key.new" -out "$dir/ca.crt.new" -days "$ca_days" \
    -subj "/CN=tenant-dns injector CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  mv "$dir/ca.key.new" "$dir/ca.key"
  mv "$dir/ca.crt.new" "$dir/ca.crt"
  echo "gen-certs.sh: made a new CA in $dir"
fi
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

# After --new-ca the old CA stays trusted too: replicas serve the old certificate until the kubelet updates the Secret.
ca_bundle=$( { cat "$dir/ca.crt"; [ -z "$old_ca" ] || printf '%s\n' "$old_ca"; } | openssl base64 -A)
kubectl -n "$namespace" create secret generic "$secret" --type=kubernetes.io/tls \
  --from-file=tls.crt="$dir/tls.crt" --from-file=tls.key="$dir/tls.key" --from-file=ca.crt="$dir/ca.crt" \
  --dry-run=client -o yaml | kubectl apply -f -
# Every webhook of both configurations (a configuration may hold more than one).
for kind in mutatingwebhookconfiguration validatingwebhookconfiguration; do
  count=$(kubectl get "$kind" "$webhook" -o go-template='{{len .webhooks}}')
  ops= i=0
  while [ "$i" -lt "$count" ]; do
    ops="$ops${ops:+,}{\"op\":\"add\",\"path\":\"/webhooks/$i/clientConfig/caBundle\",\"value\":\"$ca_bundle\"}"
    i=$((i + 1))
  done
  kubectl patch "$kind" "$webhook" --type=json -p "[$ops]"
done
echo "gen-certs.sh: Secret $namespace/$secret updated and caBundle of both $webhook webhook configurations patched"
