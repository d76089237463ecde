# Sourced by the measurement scripts beside it: `step NAME COMMAND...` runs COMMAND with its output in
# $work/NAME.log and appends its wall-clock seconds to $times (both set by the caller); a failure ends the script.
step() {
    local name=$1 begin end
    shift
    begin=$(date +%s.%N)
    "$@" > "$work/$name.log" 2>&1 || { echo "$name failed; see $work/$name.log" >&2; exit 1; }
    end=$(date +%s.%N)
    echo "$name $(awk -v a="$begin" -v b="$end" 'BEGIN { printf "%.1f", b - a }') s" | tee -a "$times"
}
