#!/usr/bin/env bash
# Build the wheel, install it (not editable) into a clean venv, and use it from an unrelated folder with an
# empty cache: the sample articles and the prompts must come from the installed package.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$PY" -m pip wheel -q --disable-pip-version-check --no-deps . -w "$work/dist" \
    2>&1 | grep -v "^WARNING: Location" || true
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q --disable-pip-version-check -c constraints.txt "$work"/dist/assistant-*.whl \
    2>&1 | grep -v "^WARNING: Location" || true
mkdir -p "$work/elsewhere"
cd "$work/elsewhere"
env -u ASSISTANT_DOCS_DIR -u ASSISTANT_INDEX_DIR XDG_CACHE_HOME="$work/cache" "$work/venv/bin/assistant" ingest
out="$(env XDG_CACHE_HOME="$work/cache" "$work/venv/bin/assistant" ask "How many North Korean troops did Russia deploy to Kursk?")"
echo "$out" | head -3
echo "$out" | grep -q "12,000" || { echo "wheel install: the answer lacks 12,000"; exit 1; }
"$work/venv/bin/python" - <<'PY'
from pathlib import Path
import assistant
from assistant.llm import load_prompt
from assistant.settings import DEFAULT_DOCS, PROMPTS_DIR
site = Path(assistant.__file__).parent
assert DEFAULT_DOCS.is_relative_to(site) and PROMPTS_DIR.is_relative_to(site), (DEFAULT_DOCS, PROMPTS_DIR)
for name in ("system.txt", "question.txt", "overview.txt", "rewrite.txt"):
    assert load_prompt(name).strip(), name
print("wheel install: seeds and prompts come from", site)
PY
