#!/bin/sh
# Installs the Debian packages minilora needs when any is missing (as root), or prints the
# exact apt-get line and fails when it cannot install them itself. Extra package names given
# as arguments are checked too (e.g. gnuplot-nox for the sweep's plot).
set -eu
PKGS="build-essential pkg-config libopenblas-dev liblapacke-dev libcjson-dev libcmocka-dev python3 parallel $*"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "minilora: installing missing Debian packages:$missing" >&2
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO=sudo; else
        echo "minilora: not root; run:  sudo apt-get install -y$missing" >&2
        exit 1
    fi
else
    SUDO=""
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends $missing
