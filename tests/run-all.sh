#!/usr/bin/env bash
# Set up everything the test suite needs on a fresh machine, then run it all.
# Idempotent: a second run reuses the venv, pip's wheel cache and the installed chromium.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null 2>&1; then
    echo "== installing Debian's chromium for the browser tests"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
echo "== installing the package with its test and ui extras at the versions in constraints.txt"
echo "   (llama-cpp-python builds once, then pip caches it)"
# PIP_CONSTRAINT also pins what pip installs to build a package from source (scikit-build-core for llama.cpp).
PIP_CONSTRAINT="$PWD/constraints.txt" .venv/bin/python -m pip install -q --disable-pip-version-check \
    -c constraints.txt -e ".[test,ui]" 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -c "import assistant, llama_cpp, playwright, gradio" # fail early if the install did not work

echo "== lint"
.venv/bin/ruff check assistant tests eval
.venv/bin/mypy assistant

echo "== tests"
set +e
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then echo "pytest ran no tests: failing"; exit 1; fi
[ "$rc" -eq 0 ] || exit "$rc"

echo "== wheel: built, installed into a clean venv, used from another folder"
bash tests/wheel-check.sh

echo "== eval gate (offline answerer)"
.venv/bin/assistant eval --answerer offline --out "${EVAL_OUT:-artifacts/eval}"
