#!/usr/bin/env bash
# Installs what pctcp's tests and tools need and a fresh machine lacks: Deno from npm, and
# (as root, with apt-get) the Debian packages below. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

DENO_VERSION=2.9.6
if ! command -v deno >/dev/null 2>&1 || ! deno --version | grep -q "deno $DENO_VERSION"; then
  echo "setup: installing deno $DENO_VERSION from npm"
  npm install -g "deno@$DENO_VERSION" >/dev/null 2>&1 || npm install -g "deno@$DENO_VERSION"
fi

need=()
command -v curl >/dev/null 2>&1 || need+=(curl)         # the measurement accuracy test compares with curl
command -v ss >/dev/null 2>&1 || need+=(iproute2)       # ss: per-circuit connections counted from the OS
command -v tor >/dev/null 2>&1 || need+=(tor)           # real Tor: private test network, C tor anchor
command -v openssl >/dev/null 2>&1 || need+=(openssl)   # the HTTPS test makes a self-signed certificate
[ -d /usr/share/fonts/truetype/dejavu ] || need+=(fonts-dejavu-core)  # text in PNG plots
# IPsec between relay hosts in namespaces: strongSwan with user-space ESP, nftables.
[ -x /usr/lib/ipsec/charon ] || need+=(strongswan-charon libstrongswan-standard-plugins)
command -v swanctl >/dev/null 2>&1 || need+=(strongswan-swanctl)
[ -f /usr/lib/ipsec/plugins/libstrongswan-kernel-libipsec.so ] || need+=(libcharon-extra-plugins)
command -v nft >/dev/null 2>&1 || need+=(nftables)
[ -x /usr/sbin/cron ] || need+=(cron)                   # pctcp schedule: tested against a real cron daemon
command -v chromium >/dev/null 2>&1 || need+=(chromium)   # the report test opens report.html in headless Chromium
if [ "${#need[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing ${need[*]} with apt-get"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    # Debian's tor and strongSwan packages may start system daemons; the tests start their own.
    if command -v service >/dev/null 2>&1; then
      service tor stop >/dev/null 2>&1 || true
      service strongswan-starter stop >/dev/null 2>&1 || true
    fi
  else
    echo "setup: missing ${need[*]} (install them as root with apt-get)" >&2
  fi
fi

deno install --frozen >/dev/null   # the npm packages pinned by deno.lock
