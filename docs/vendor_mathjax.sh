#!/usr/bin/env bash
# Vendor MathJax (tex-chtml bundle + its woff fonts) into docs/_static/mathjax, so that the documentation renders
# maths without a CDN (offline readers, `sphinx-build` without internet). Needs npm; the result is committed.
#   docs/vendor_mathjax.sh [VERSION]     # default 3.2.2
set -euo pipefail
version="${1:-3.2.2}"
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack "mathjax@$version" --silent >/dev/null && tar xzf "mathjax-$version.tgz")
rm -rf _static/mathjax
mkdir -p _static/mathjax/output/chtml/fonts
cp "$tmp/package/es5/tex-chtml.js" "$tmp/package/LICENSE" _static/mathjax/
cp -r "$tmp/package/es5/output/chtml/fonts/woff-v2" _static/mathjax/output/chtml/fonts/
echo "MathJax $version" > _static/mathjax/VERSION
du -sh _static/mathjax
