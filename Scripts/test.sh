#!/usr/bin/env bash
# The test command: installs what is missing, fetches all-MiniLM-L6-v2 (for the parity test
# against transformers; that test is skipped if the download fails), runs the whole suite and
# one trial of Scripts/kill-resume.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
source Scripts/setup.sh
aq_setup
if model="$(Scripts/fetch-minilm.sh)"; then
    export AQBERT_MINILM="$model"
else
    aq_log "could not fetch all-MiniLM-L6-v2: its parity test will be skipped"
fi
swift build --build-tests
swift test --skip-build --disable-swift-testing
# kill -9 at random points of finetune, retrain, search and compare, then resume: byte-identical.
AQBERT=.build/debug/aqbert TRIALS=1 bash Scripts/kill-resume.sh
