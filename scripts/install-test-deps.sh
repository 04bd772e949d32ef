#!/usr/bin/env bash
# Installs the Debian packages the test suite and the benchmarks run against:
# kubectl (kustomize rendering of deploy/; Debian's kubernetes-client when the
# machine has no kubectl),
# real DNS servers (unbound, dnsdist, knot-resolver, dnsmasq, nsd as the
# authoritative of the differential conformance suite), ldnsutils to sign its
# zone (ldns-keygen, ldns-signzone), dig, Prometheus and promtool, openssl for
# test certificates, dnsperf for load; for the pods of test/pod/ (network
# namespaces, as root): ip (iproute2), nft (nftables), setpriv (util-linux) and
# musl-gcc (musl-tools, the musl stub resolver probe).
# Installs only what is missing; services are never started by the install.
set -euo pipefail

declare -A pkg_for=(
  [unbound]=unbound
  [dig]=dnsutils
  [prometheus]=prometheus
  [promtool]=prometheus
  [dnsdist]=dnsdist
  [kresd]=knot-resolver
  [nsd]=nsd
  [ldns-keygen]=ldnsutils
  [ldns-signzone]=ldnsutils
  [dnsmasq]=dnsmasq-base
  [dnsperf]=dnsperf
  [openssl]=openssl
  [taskset]=util-linux
  [setpriv]=util-linux
  [ip]=iproute2
  [nft]=nftables
  [musl-gcc]=musl-tools
  [kubectl]=kubernetes-client
)
# Debian installs some daemons under /usr/sbin, which a non-root PATH may lack.
export PATH="$PATH:/usr/sbin:/sbin"

missing=()
for bin in "${!pkg_for[@]}"; do
  command -v "$bin" >/dev/null 2>&1 || missing+=("${pkg_for[$bin]}")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "test dependencies: all present"
  exit 0
fi
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
echo "test dependencies: installing ${missing[*]}"

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  SUDO="sudo"
fi
# Keep package scripts from starting the daemons (they would bind :53 on this machine).
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "test dependencies: installed"
