#!/bin/sh
# Installs the Debian packages dimg needs to build and test, only when missing.
set -e
pkgs="meson ninja-build gcc pkg-config zlib1g-dev libzstd-dev libdeflate-dev libssl-dev qemu-utils python3 time"
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "install-deps: installing$missing"
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq $missing >/dev/null
