# Sourced by the bench scripts that run one aqbert training per output folder.
# step DIR COMMAND...: runs COMMAND --output DIR once (a finished step leaves DIR/.done), resuming
# a killed one from its last checkpoint; its output goes to DIR.log; a failure ends the script.
step() {
    local dir="$1"; shift
    [[ -f "$dir/.done" ]] && return 0
    local resume=()
    if [[ -f "$dir/last-checkpoint.json" ]]; then resume=(--resume); else rm -rf "$dir"; fi
    "$@" --output "$dir" "${resume[@]}" > "$dir.log" 2>&1 || { echo "error: $* failed, see $dir.log" >&2; exit 1; }
    touch "$dir/.done"
}
