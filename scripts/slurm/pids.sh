# Process helpers shared by start_local_cluster.sh and stop_local_cluster.sh (sourced).
# pid_of PIDFILE: the pid in PIDFILE (empty if none). Daemons delete their pid
# file on exit, so read it once and poll the pid.
pid_of() { { tr -dc 0-9 <"$1"; } 2>/dev/null || true; }
# alive_pid PID NAME: PID is a live (not zombie) process named NAME (a pid
# file left from an earlier boot may name an unrelated process).
alive_pid() {
    local state
    [ -n "$1" ] && [ -r "/proc/$1/stat" ] || return 1
    [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$2" ] || return 1
    state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)
    [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}
# alive PIDFILE NAME
alive() { alive_pid "$(pid_of "$1")" "$2"; }
