#!/usr/bin/env bash
# Mutation testing of tracker/ and exporter/ with mutmut (configured in pyproject.toml).
#   scripts/mutation.sh                       every module (slow: an hour and more on 2 cores)
#   scripts/mutation.sh tracker/effects.py    one module (a path or a dotted name)
#   scripts/mutation.sh tracker exporter/sources.py   packages and modules mixed
#   scripts/mutation.sh --retest-alive tracker/store.py   after adding tests: try the
#                                                          alive mutants again
# Then prints each module's score (scripts/mutation_score.py). Results are kept in mutants/:
# a second run only runs mutants not yet run; `rm -rf mutants` starts afresh.
set -euo pipefail
cd "$(dirname "$0")/.."

retest=
if [ "${1:-}" = "--retest-alive" ]; then
    retest=1
    shift
fi

patterns=()
modules=()
for arg in "$@"; do
    name=${arg%.py}
    name=${name%/}
    name=${name//\//.}
    patterns+=("$name.*")
    modules+=("$name")
done

if [ -n "$retest" ] && [ -d mutants ]; then
    python3 scripts/mutation_score.py --retest-alive ${modules[@]+"${modules[@]}"}
    # mutmut maps each test to the functions it reaches by the test's name, and maps only
    # tests with new names again: a test rewritten under its old name keeps its old map.
    rm -f mutants/mutmut-stats.json
fi
# Given a pattern, mutmut runs every mutant it matches again, even those with a verdict:
# once mutants/ holds results, it is given the names of the mutants not yet run instead.
if [ ${#patterns[@]} -gt 0 ] && [ -d mutants ]; then
    mapfile -t names < <(python3 scripts/mutation_score.py --pending "${modules[@]}")
    if [ ${#names[@]} -gt 0 ]; then
        patterns=("${names[@]}")
    else
        patterns=()
        skip=1
    fi
fi
# Niced: the machine is shared. mutmut exits non-zero when mutants survive; the score says more.
# Two workers: the machine has two cores, shared.
if [ -z "${skip:-}" ]; then
    LUMEN_PROPERTY_EXAMPLES=${LUMEN_PROPERTY_EXAMPLES:-25} nice mutmut run --max-children 2 \
        ${patterns[@]+"${patterns[@]}"} || true
fi
python3 scripts/mutation_score.py ${modules[@]+"${modules[@]}"}
