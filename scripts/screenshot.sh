#!/usr/bin/env bash
# Regenerates docs/preview-screenshot.png: the HTML preview of the example campaign (the last day before World Kobane
# Day and the day itself, for three accounts: Sorani on Bluesky, English on Bluesky and Mastodon) as headless
# Chromium shows it. Installs Debian's chromium (and Noto fonts for Arabic script) when missing; needs root for that.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v chromium >/dev/null; then
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium fonts-noto-core
fi
AMPLIFIER=${AMPLIFIER:-.venv/bin/amplifier}
OUT=${1:-docs/preview-screenshot.png}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$AMPLIFIER" preview -c schedule.yaml --from 2027-10-31 --to 2027-11-02 \
  --account bluesky-ckb --account bluesky-en --account mastodon-en --format html -o "$tmp/preview.html"
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
  --disable-component-update --disable-sync --user-data-dir="$tmp/profile" --hide-scrollbars \
  --window-size=1000,1900 --screenshot="$tmp/preview.png" "file://$tmp/preview.html" 2>/dev/null
mkdir -p "$(dirname "$OUT")"
mv "$tmp/preview.png" "$OUT"
echo "wrote $OUT"
