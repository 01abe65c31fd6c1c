#!/usr/bin/env bash
# Mutation testing of the maths (`make mutation`; TESTING.md has the score and the list of
# equivalent survivors). mutmut 3 mutates the files named in pyproject's [tool.mutmut]
# and runs their fast unit and property tests against every mutant.
#
# mutmut's tests must import the mutated copy (mutants/src/matchwise), but the editable
# install puts src/ on every .venv interpreter's path (a .pth file), which would shadow it.
# So mutmut runs from a second venv, .venv-mutation, that reuses .venv's packages through a
# plain path entry: Python does not read the .pth files of a directory added that way, so
# matchwise is importable there only from mutants/src.
#
#   bash scripts/mutation.sh                  # a fresh run over every file (slow)
#   bash scripts/mutation.sh 'matchwise.metrics.*'   # only these mutants (mutmut globs)
#   MUTATION_KEEP=1 bash scripts/mutation.sh  # reuse mutants/ (mutmut skips checked ones)
#   MUTATION_JOBS=2                           # parallel mutants (default: the CPU count)
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
MVENV=.venv-mutation
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

if ! "$VENV/bin/python" -c 'import mutmut, hypothesis' 2>/dev/null; then
    echo "mutation: $VENV lacks mutmut/hypothesis; run make mutation (installs .[dev])" >&2
    exit 1
fi
if [ ! -x "$MVENV/bin/python" ]; then
    "$VENV/bin/python" -m venv --without-pip "$MVENV"
fi
site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
msite=$("$MVENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "$site" >"$msite/matchwise-deps.pth"
if "$MVENV/bin/python" -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("matchwise") is None)'; then
    echo "mutation: matchwise is importable in $MVENV; it would shadow the mutants" >&2
    exit 1
fi

mutmut() {
    "$MVENV/bin/python" -c 'import sys; from mutmut.__main__ import cli; sys.argv[0] = "mutmut"; sys.exit(cli())' "$@"
}

if [ $# -gt 0 ]; then
    patterns=("$@")
else
    # Whole files, except two: of features/people.py only reciprocal_score (the rest is
    # the people blend and its reasons), of models/reciprocal.py the scoring maths (the
    # calibration fit, both directions, known decisions, the online path), not its
    # constructor, metadata and persistence.
    rec='matchwise.models.reciprocal.xǁReciprocalRecommenderǁ'
    patterns=(
        'matchwise.metrics.*'
        'matchwise.models.elo.*'
        'matchwise.features.compatibility.*'
        'matchwise.features.people.x_reciprocal_score__mutmut_*'
        'matchwise.data.splits.*'
        'matchwise.models.reciprocal.x__sigmoid__mutmut_*'
        'matchwise.models.reciprocal.x_fit_logistic__mutmut_*'
        'matchwise.models.reciprocal.x__decision_matrix__mutmut_*'
    )
    for method in _fit_platt _fit_row_stats _standardise _rows_raw _columns_raw _pair_raw \
        _proba _override one_sided_proba reverse_proba score score_candidates _check_users; do
        patterns+=("${rec}${method}__mutmut_*")
    done
fi

[ -n "${MUTATION_KEEP:-}" ] || rm -rf mutants
mkdir -p mutants
start=$(date +%s)
mutmut run --max-children "${MUTATION_JOBS:-$(getconf _NPROCESSORS_ONLN)}" "${patterns[@]}" >mutants/run.log 2>&1 || {
    tail -40 mutants/run.log >&2
    exit 1
}
seconds=$(($(date +%s) - start))
mutmut results --all true >mutants/results.txt
"$MVENV/bin/python" - "$seconds" "${patterns[@]}" <<'EOF'
"""Score per file: killed (tests failed, or the mutant timed out) over checked mutants."""

import collections
import fnmatch
import sys

seconds, patterns = int(sys.argv[1]), sys.argv[2:]
by_file: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
survivors = []
for line in open("mutants/results.txt", encoding="utf-8"):
    name, _, status = line.strip().rpartition(": ")
    if not name or not any(fnmatch.fnmatch(name, p) for p in patterns):
        continue
    module = name.split(".x_")[0].split(".xǁ")[0]
    by_file[module][status] += 1
    if status not in ("killed", "timeout"):
        survivors.append(f"{name}: {status}")
total = collections.Counter()
print(f"{'module':36} {'killed':>7} {'of':>5} {'score':>7}")
for module, counts in sorted(by_file.items()):
    checked = sum(n for s, n in counts.items() if s != "not checked")
    killed = counts["killed"] + counts["timeout"]
    total.update({"killed": killed, "checked": checked})
    print(f"{module:36} {killed:7} {checked:5} {100 * killed / max(checked, 1):6.1f}%")
print(
    f"{'total':36} {total['killed']:7} {total['checked']:5} "
    f"{100 * total['killed'] / max(total['checked'], 1):6.1f}%   ({seconds} s)"
)
print(f"\n{len(survivors)} not killed (mutants/survivors.txt; `mutmut show NAME` shows one):")
with open("mutants/survivors.txt", "w", encoding="utf-8") as out:
    out.writelines(s + "\n" for s in survivors)
EOF
