# conformance/lib.sh — shared by conformance/run and conformance/measure:
# re-exec under the subreaper, the runtime as AS_USER, bundles from one
# busybox rootfs, state polling. Sourced; expects `here` to be set.
# shellcheck shell=bash

PYTHON=${PYTHON:-$(command -v python3 || echo /usr/bin/python3)}
if [ -z "${CONFORMANCE_REAPER:-}" ]; then
    [ -x "$PYTHON" ] || { echo "conformance: python3 is required" >&2; exit 2; }
    exec "$PYTHON" "$here/helper.py" reaper "$here/$(basename "$0")" "$@"
fi

die() { echo "conformance: $*" >&2; exit 2; }
helper() { "$PYTHON" "$here/helper.py" "$@"; }

RUNTIME=${RUNTIME:-$here/../target/x86_64-unknown-linux-gnu/release/husk}
HUSK=${HUSK:-$here/../target/x86_64-unknown-linux-gnu/release/husk}
[ -x "$RUNTIME" ] || die "RUNTIME=$RUNTIME is not executable"
RT_EXE=$(readlink -f "$RUNTIME")
AS_USER=${AS_USER:-}
if [ -n "$AS_USER" ]; then
    [ "$(id -u)" -eq 0 ] || die "AS_USER needs the script to run as root"
    uid=$(id -u "$AS_USER") && gid=$(id -g "$AS_USER") || die "no user $AS_USER"
    RUN_USER=$AS_USER
else
    uid=$(id -u) gid=$(id -g)
    RUN_USER=$(id -un)
fi
rootless=
[ "$uid" -eq 0 ] || rootless=--rootless

WORK=$(mktemp -d /tmp/conformance.XXXXXX) || die "mktemp"
chmod 755 "$WORK"
ROOT=$WORK/state          # the runtime's --root (wiped by check b)
TAG=CONFORMANCE_TAG=$$.$RANDOM$RANDOM
CONTAINERS=()             # "ID BUNDLE" to delete --force when a check ends
KILL_PIDS=()              # processes we started ourselves
MARKS=()                  # argv strings whose processes must not outlive a check

own() { [ -z "$AS_USER" ] || chown -R "$uid:$gid" "$@"; }
mkdir -p "$ROOT" "$WORK/xdg" && chmod 700 "$WORK/xdg" && own "$ROOT" "$WORK/xdg"

# Run a command as the runtime's user, with the tag that marks every
# process the runtime starts (the container's own env comes from the config).
as_user() {
    if [ -n "$AS_USER" ]; then
        setpriv --reuid="$uid" --regid="$gid" --init-groups \
            env "$TAG" HOME="$WORK" XDG_RUNTIME_DIR="$WORK/xdg" "$@"
    else
        env "$TAG" "$@"
    fi
}

# rt ARGS...: the runtime with --root; stdout in $WORK/last.out, stderr in
# $WORK/last.err, the command in LAST.
rt() {
    LAST="$(basename "$RUNTIME") $*"
    echo "$LAST" >"$WORK/last.cmd"
    as_user "$RUNTIME" --root "$ROOT" "$@" </dev/null >"$WORK/last.out" 2>"$WORK/last.err"
}
# Why the last runtime command failed, in one line.
why() { echo "\`$(cat "$WORK/last.cmd")\` failed: $(grep -v '^\s*$' "$WORK/last.err" | tail -n1 | cut -c1-200)"; }

# create ID BUNDLE [ID-ARG]: the container's stdio goes to files in the
# bundle, never to a pipe of ours.
create() {
    local id=$1 b=$2
    CONTAINERS+=("$id $b")
    LAST="$(basename "$RUNTIME") create --bundle $b --pid-file $b/pid $id"
    echo "$LAST" >"$WORK/last.cmd"
    (cd "$b" && as_user "$RUNTIME" --root "$ROOT" create --bundle "$b" --pid-file "$b/pid" "$id" \
        </dev/null >"$b/out" 2>"$b/err")
    local rc=$?
    cp "$b/err" "$WORK/last.err"
    return $rc
}

# status ARGS...: `state ARGS` → the status field; fails if state fails.
status() {
    rt state "$@" || return 1
    tr -d '\n' <"$WORK/last.out" | sed -n 's/.*"status"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p'
}

# wait_status WANT SECONDS ARGS...: poll state until status is WANT.
wait_status() {
    local want=$1 n=$(($2 * 10)) s
    shift 2
    while [ $n -gt 0 ]; do
        s=$(status "$@") && [ "$s" = "$want" ] && return 0
        sleep 0.1
        n=$((n - 1))
    done
    return 1
}

alive() {
    local l
    l=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    l=${l##*) }
    [[ ${l%% *} != [ZX] ]]
}

# wait_reaped PID SECONDS: the PID is gone from /proc (exited and reaped).
wait_reaped() {
    local n=$(($2 * 10))
    while [ -e "/proc/$1" ] && [ $n -gt 0 ]; do sleep 0.1; n=$((n - 1)); done
    [ ! -e "/proc/$1" ]
}

# wait_marked STRING COUNT SECONDS: until exactly COUNT live processes carry
# STRING in argv; prints their PIDs.
wait_marked() {
    local n=$(($3 * 10)) p
    while :; do
        p=$(helper marked "$1")
        if [ "$(wc -w <<<"$p")" -eq "$2" ] || [ $n -le 0 ]; then
            echo "$p"
            [ "$(wc -w <<<"$p")" -eq "$2" ]
            return
        fi
        sleep 0.1
        n=$((n - 1))
    done
}

describe() {
    local p out=
    for p in $1; do out+="$p($(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | cut -c1-40)) "; done
    echo "${out% }"
}

# --- the bundle ---------------------------------------------------------

if [ -n "${BUNDLE:-}" ]; then
    BUNDLE=$(cd "$BUNDLE" && pwd) || die "BUNDLE=$BUNDLE: no such directory"
    ROOTFS=$BUNDLE/rootfs
    [ -x "$ROOTFS/bin/sh" ] || die "$ROOTFS/bin/sh missing: BUNDLE must hold a busybox rootfs"
else
    "$here/../tools/mkbundle" "$WORK/bundle" || die "tools/mkbundle failed"
    ROOTFS=$WORK/bundle/rootfs
fi
BASE=$WORK/base
mkdir -p "$BASE" && own "$BASE"
if [ -n "${BUNDLE:-}" ] && [ -f "$BUNDLE/config.json" ]; then
    cp "$BUNDLE/config.json" "$BASE/config.json"
    SPEC_FROM="$BUNDLE/config.json"
elif (cd "$BASE" && as_user "$RUNTIME" spec $rootless --bundle "$BASE" </dev/null >/dev/null 2>&1) ||
    (cd "$BASE" && as_user "$RUNTIME" spec $rootless </dev/null >/dev/null 2>&1); then
    SPEC_FROM="$(basename "$RUNTIME") spec${rootless:+ $rootless}"
elif [ -x "$HUSK" ] && (cd "$BASE" && as_user "$HUSK" spec $rootless --bundle "$BASE" </dev/null >/dev/null 2>&1); then
    SPEC_FROM="husk spec${rootless:+ $rootless} (the runtime has no spec)"
else
    die "no config: neither \`$RUNTIME spec\` nor \`$HUSK spec\` worked, and BUNDLE has no config.json"
fi
[ -f "$BASE/config.json" ] || die "spec wrote no $BASE/config.json"

# bundle NAME MODE ARGV_JSON: a bundle sharing the rootfs (read-only).
bundle() {
    local b=$WORK/$1
    mkdir -p "$b" &&
        helper patch "$BASE/config.json" "$b/config.json" "$ROOTFS" "$2${rootless:+,rootless}" "$3" &&
        own "$b" && echo "$b"
}

# A number no other process uses as an argv word: `sleep $MARK` marks ours.
mark() { echo $((700000 + (RANDOM * 32768 + RANDOM) % 200000)); }

# Delete every container the check made, kill what it marked.
teardown() {
    local c p m
    for c in "${CONTAINERS[@]}"; do
        rt delete --force ${c% *} || true
        [ -f "${c#* }/pid" ] && KILL_PIDS+=("$(cat "${c#* }/pid")")
    done
    for m in "${MARKS[@]}"; do
        for p in $(helper marked "$m"); do kill -KILL "$p" 2>/dev/null; done
    done
    for p in "${KILL_PIDS[@]}"; do
        # Only what is still ours: a recorded container PID still in a mount
        # namespace other than ours (never a host process that recycled it).
        [ -n "$p" ] && alive "$p" && [ "$(ns_of "$p")" != "$(ns_of $$)" ] && kill -KILL "$p" 2>/dev/null
    done
    CONTAINERS=() KILL_PIDS=() MARKS=()
    mkdir -p "$ROOT" && own "$ROOT"
}
ns_of() { stat -Lc %i "/proc/$1/ns/mnt" 2>/dev/null; }

cleanup() {
    teardown >/dev/null 2>&1
    if [ -n "${KEEP:-}" ]; then echo "# kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
