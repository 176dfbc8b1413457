#!/usr/bin/env bash
# What the integration tests need from Debian: Janus, Chromium, iproute2 (namespaces), nftables
# (blocking UDP for the ICE-TCP tests), openssl (test certificates), Prometheus and promtool (the
# scrape test), Janus's own janus.js and the WebRTC adapter (the janus.js lifecycle tests), Redis, nginx
# and HAProxy (the cluster tests), kubectl (renders deploy/k8s/ with its kustomize, offline). Installed
# with apt-get when run as root; otherwise this stops and names the packages.
set -euo pipefail
need=()
command -v janus >/dev/null || need+=(janus)
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v ip >/dev/null || need+=(iproute2)
command -v nft >/dev/null || need+=(nftables)
command -v openssl >/dev/null || need+=(openssl)
command -v prometheus >/dev/null && command -v promtool >/dev/null || need+=(prometheus)
[ -f /usr/share/javascript/janus-gateway/janus.js ] || need+=(libjs-janus-gateway)
[ -f /usr/share/javascript/webrtc-adapter/adapter.js ] || need+=(libjs-webrtc-adapter)
command -v redis-server >/dev/null || need+=(redis-server)
[ -x /usr/sbin/nginx ] || need+=(nginx-light)
[ -x /usr/sbin/haproxy ] || need+=(haproxy)
command -v kubectl >/dev/null || need+=(kubectl)
# Meetecho's reference WHIP client (GStreamer webrtcbin), and gcc for the test's libsoup preload (gcc also
# builds the bench's C relay).
command -v whip-client >/dev/null || need+=(simple-whip-client)
command -v gcc >/dev/null || need+=(gcc)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "tests: missing Debian packages: ${need[*]}" >&2
  echo "tests: install them (apt-get install -y ${need[*]}) or run the tests as root, which installs them" >&2
  exit 1
fi
echo "tests: installing ${need[*]} with apt-get"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
