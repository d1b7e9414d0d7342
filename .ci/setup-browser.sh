#!/usr/bin/env bash
# Debian's chromium for tests/test_runbook.py, which renders the runbook in a real headless
# browser (the test fails under CI without it, and skips elsewhere).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
if ! command -v chromium >/dev/null 2>&1; then
    printf 'ci: installing chromium (headless browser for the runbook test)\n' >&2
    apt-get -o Acquire::Retries=3 update -qq </dev/null
    apt-get -o Acquire::Retries=3 install -y -qq --no-install-recommends chromium </dev/null
fi
