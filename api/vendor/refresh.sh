#!/usr/bin/env bash
# Refresh the dashboard's vendored chart library from the npm registry and check it.
#
#   api/vendor/refresh.sh            # re-fetch the pinned version; fail unless it is byte-identical
#   api/vendor/refresh.sh 5.3.0      # move the pin: fetch that version, record its hashes
#
# The package tarball must match the registry's own sha512 integrity; the file served
# (api/static/vendor/lightweight-charts.js) must match the sha256 recorded in
# api/vendor/lightweight-charts.pin. No build step: the product runs the file as vendored.
set -euo pipefail
cd "$(dirname "$0")/../.."
PIN=api/vendor/lightweight-charts.pin
OUT=api/static/vendor
FILE=dist/lightweight-charts.standalone.production.js

field() { sed -n "s/^$1=//p" "$PIN"; }
version="${1:-$(field version)}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

integrity=$(npm view "lightweight-charts@$version" dist.integrity)
(cd "$work" && npm pack --silent "lightweight-charts@$version" >/dev/null)
tarball="$work/lightweight-charts-$version.tgz"
actual="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)"
if [ "$actual" != "$integrity" ]; then
  echo "tarball integrity mismatch: registry says $integrity, got $actual" >&2
  exit 1
fi
tar -xzf "$tarball" -C "$work"
license=$(node -p "require('$work/package/package.json').license")
[ "$license" = "Apache-2.0" ] || { echo "licence changed to $license: review before vendoring" >&2; exit 1; }
sha=$(sha256sum "$work/package/$FILE" | cut -d' ' -f1)

if [ $# -eq 0 ] && [ "$sha" != "$(field sha256)" ]; then
  echo "lightweight-charts $version from the registry differs from the pin ($sha)" >&2
  exit 1
fi
cp "$work/package/$FILE" "$OUT/lightweight-charts.js"
cp "$work/package/LICENSE" "$OUT/lightweight-charts.LICENSE.txt"
cat > "$PIN" <<PIN
# The dashboard's chart library, vendored by api/vendor/refresh.sh (checked by tests/api/test_dashboard_files.py)
name=lightweight-charts
version=$version
license=$license
file=$FILE
integrity=$integrity
sha256=$sha
PIN
echo "lightweight-charts $version vendored: $sha"
