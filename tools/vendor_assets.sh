#!/usr/bin/env bash
# Fetch the book's front-end assets from the npm registry into book/_static/vendor,
# so the HTML renders math and widgets with no network: MathJax 3, RequireJS and the
# Jupyter widgets HTML manager. Pinned versions; skipped when already present.
set -euo pipefail
cd "$(dirname "$0")/.."
MATHJAX=mathjax@3.2.2
REQUIREJS=requirejs@2.3.7
HTML_MANAGER=@jupyter-widgets/html-manager@1.0.15
vendor=book/_static/vendor
stamp="$vendor/.complete-$MATHJAX-$REQUIREJS-${HTML_MANAGER//\//_}"
[ -f "$stamp" ] && exit 0
command -v npm >/dev/null || { echo "vendor_assets: npm (Node.js) is needed once to fetch MathJax and the widget manager" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "$MATHJAX" "$REQUIREJS" "$HTML_MANAGER" >/dev/null)
for tarball in "$work"/*.tgz; do
  mkdir -p "${tarball%.tgz}" && tar xzf "$tarball" -C "${tarball%.tgz}"
done
rm -rf "$vendor" && mkdir -p "$vendor/html-manager"
cp -r "$work"/mathjax-*/package/es5 "$vendor/mathjax"
cp "$work"/requirejs-*/package/require.js "$vendor/require.js"
find "$work"/jupyter-widgets-html-manager-*/package/dist -maxdepth 1 -type f \
  ! -name '*.map' ! -name 'embed.js*' ! -name 'libembed-amd.js' -exec cp {} "$vendor/html-manager/" \;
touch "$stamp"
echo "vendor_assets: $MATHJAX, $REQUIREJS, $HTML_MANAGER -> $vendor"
