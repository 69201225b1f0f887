#!/usr/bin/env bash
# Stop the one-node SLURM cluster started by start_local_cluster.sh.
# Ends slurmd, slurmctld, slurmdbd, mariadbd and munged by the pid files in
# $SPEC3FLOW_SLURM_STATE (default /var/run/spec3flow-slurm) -- never by name --
# and waits for each to exit (a zombie counts as exited: the reaper of
# orphaned daemons can be slow in containers). Safe to run when nothing runs.
# Leaves packages, configs, the accounting database and logs in place.
set -uo pipefail

STATE=${SPEC3FLOW_SLURM_STATE:-/var/run/spec3flow-slurm}
WAIT=${SPEC3FLOW_SLURM_STOP_WAIT:-30}   # seconds before SIGKILL

. "$(dirname "${BASH_SOURCE[0]}")/pids.sh"   # pid_of, alive_pid, alive

stop() {   # stop NAME PIDFILE
    local name=$1 pidfile=$2 pid i
    pid=$(pid_of "$pidfile")
    if ! alive_pid "$pid" "$name"; then
        rm -f "$pidfile"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < WAIT * 5; i++)); do
        alive_pid "$pid" "$name" || { echo "stopped $name (pid $pid)"; rm -f "$pidfile"; return 0; }
        sleep 0.2
    done
    echo "$name (pid $pid) ignored SIGTERM for ${WAIT}s; sending SIGKILL" >&2
    kill -KILL "$pid" 2>/dev/null
    for ((i = 0; i < 25; i++)); do
        alive_pid "$pid" "$name" || { echo "killed $name (pid $pid)"; rm -f "$pidfile"; return 0; }
        sleep 0.2
    done
    echo "could not stop $name (pid $pid)" >&2
    return 1
}

rc=0
stop slurmd    "$STATE/slurmd.pid"       || rc=1
stop slurmctld "$STATE/slurmctld.pid"    || rc=1
stop slurmdbd  "$STATE/slurmdbd.pid"     || rc=1
stop mariadbd  "$STATE/mysql/mariadb.pid" || rc=1
stop munged    "$STATE/munge/munged.pid" || rc=1
exit $rc
