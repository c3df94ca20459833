#!/usr/bin/env bash
# Rebuilds this folder from the npm registry: `bash pipeline/data_docs_static/vendor.sh`.
# Takes each package with `npm pack` (the registry's own tarball, checked by npm against the
# registry's integrity hash), keeps only the files the Data Docs pages use, their licence
# texts, and writes SOURCES.txt (package, version, licence, file, bytes, sha256).
# The versions are the ones Great Expectations' page templates ask for (see pipeline/datadocs.py).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# package@version  licence  source file in the tarball -> file here (space separated pairs)
specs=(
  "jquery@3.7.1|MIT|dist/jquery.min.js=jquery/jquery.min.js LICENSE.txt=LICENSES/jquery.txt"
  "popper.js@1.12.9|MIT|dist/umd/popper.min.js=popper.js/popper.min.js"
  "bootstrap@4.3.1|MIT|dist/css/bootstrap.min.css=bootstrap/bootstrap.min.css dist/js/bootstrap.min.js=bootstrap/bootstrap.min.js LICENSE=LICENSES/bootstrap.txt"
  "bootstrap-table@1.19.1|MIT|dist/bootstrap-table.min.css=bootstrap-table/bootstrap-table.min.css dist/bootstrap-table.min.js=bootstrap-table/bootstrap-table.min.js dist/extensions/filter-control/bootstrap-table-filter-control.min.css=bootstrap-table/bootstrap-table-filter-control.min.css dist/extensions/filter-control/bootstrap-table-filter-control.min.js=bootstrap-table/bootstrap-table-filter-control.min.js LICENSE=LICENSES/bootstrap-table.txt"
  "bootstrap-datepicker@1.9.0|Apache-2.0|dist/css/bootstrap-datepicker.min.css=bootstrap-datepicker/bootstrap-datepicker.min.css dist/js/bootstrap-datepicker.min.js=bootstrap-datepicker/bootstrap-datepicker.min.js LICENSE=LICENSES/bootstrap-datepicker.txt"
  "@fortawesome/fontawesome-free@6.6.0|CC-BY-4.0 AND OFL-1.1 AND MIT|css/fontawesome.min.css=fontawesome-free/css/fontawesome.min.css css/solid.min.css=fontawesome-free/css/solid.min.css webfonts/fa-solid-900.woff2=fontawesome-free/webfonts/fa-solid-900.woff2 LICENSE.txt=LICENSES/fontawesome-free.txt"
  "@forevolve/bootstrap-dark@1.1.0|MIT|dist/css/bootstrap-prefers-dark.min.css=bootstrap-dark/bootstrap-prefers-dark.min.css LICENSE=LICENSES/bootstrap-dark.txt"
)

find "$here" -mindepth 1 -maxdepth 1 -type d -exec rm -rf {} +
sources="$here/SOURCES.txt"
{
  echo "Third-party files of custdq's offline Data Docs, taken from the npm registry by vendor.sh."
  echo "Each file is the package's own, unchanged. popper.js 1.12.9 ships no licence file: its"
  echo "package.json says MIT and the file keeps its copyright header."
  echo
  printf '%-36s %-30s %-55s %8s %s\n' package licence file bytes sha256
} > "$sources"
for spec in "${specs[@]}"; do
  IFS='|' read -r pkg licence pairs <<<"$spec"
  dir="$work/$(echo "$pkg" | tr '/@' '__')"
  mkdir -p "$dir"
  (cd "$dir" && npm pack "$pkg" --silent >/dev/null && tar xzf ./*.tgz)
  test "$(node -p "require('$dir/package/package.json').version")" = "${pkg##*@}"
  for pair in $pairs; do
    from="${pair%%=*}"; to="${pair#*=}"
    mkdir -p "$(dirname "$here/$to")"
    cp "$dir/package/$from" "$here/$to"
    case "$to" in LICENSES/*) continue ;; esac
    printf '%-36s %-30s %-55s %8s %s\n' "$pkg" "$licence" "$to" "$(stat -c %s "$here/$to")" \
      "$(sha256sum "$here/$to" | cut -d' ' -f1)" >> "$sources"
  done
done
echo "wrote $(find "$here" -type f | wc -l) files into $here"
