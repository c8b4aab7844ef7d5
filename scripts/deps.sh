#!/bin/sh
# Install the Debian packages bulk-import needs (as root), or print the
# apt-get line to run.  Only missing packages are installed.
set -eu
PKGS="build-essential pkg-config libfcgi-dev libfcgi-bin libcurl4-openssl-dev libjson-c-dev
libssl-dev libjwt-dev libpq-dev clearsilver-dev apache2 apache2-utils libapache2-mod-fcgid
postgresql-15 postgresql-client-15 chromium tidy poppler-utils curl ca-certificates"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
# Node.js may come from another packaging (with npm inside); only ask for
# Debian's when the commands are absent.
command -v node >/dev/null 2>&1 || missing="$missing nodejs"
command -v npm >/dev/null 2>&1 || missing="$missing npm"
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
	echo "missing packages:$missing" >&2
	echo "run as root: apt-get install -y$missing" >&2
	exit 1
fi
echo "installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends $missing >/dev/null
