#!/usr/bin/env bash
# Start a one-node SLURM cluster on this machine, without systemd, for testing
# the `slurm` Snakemake profile (workflow/profiles/slurm).
#
#   sudo scripts/slurm/start_local_cluster.sh      # idempotent; safe to rerun
#   sudo scripts/slurm/stop_local_cluster.sh
#
# Debian/Ubuntu only (apt-get), run as root.  Installs slurmctld, slurmd,
# slurm-client and munge, plus slurmdbd + mariadb-server for job accounting
# (`sacct`, which snakemake-executor-plugin-slurm polls by default), writes
# /etc/slurm/slurm.conf and /etc/slurm/slurmdbd.conf for one node on
# 127.0.0.1, starts munged, mariadbd, slurmdbd, slurmctld and slurmd as plain
# background daemons with their pid files in $SPEC3FLOW_SLURM_STATE, and waits
# until the node is idle and `srun hostname` works.
#
# Environment:
#   SPEC3FLOW_SLURM_STATE       state dir: pid files, logs, spool
#                               (default /var/run/spec3flow-slurm)
#   SPEC3FLOW_SLURM_ACCOUNTING  1 (default): slurmdbd + MariaDB, `sacct` works.
#                               0: no accounting daemons; use the profile with
#                               `--slurm-status-command squeue` (MinJobAge is
#                               large enough for that).
#   SPEC3FLOW_SLURM_FORCE       1: overwrite an /etc/slurm/slurm.conf that this
#                               script did not write (refused otherwise).
#   SPEC3FLOW_SLURM_TIMEOUT     seconds to wait for each daemon / the node (60)
set -euo pipefail

T0=$(date +%s%N)
STATE=${SPEC3FLOW_SLURM_STATE:-/var/run/spec3flow-slurm}
ACCOUNTING=${SPEC3FLOW_SLURM_ACCOUNTING:-1}
FORCE=${SPEC3FLOW_SLURM_FORCE:-0}
TIMEOUT=${SPEC3FLOW_SLURM_TIMEOUT:-60}
CLUSTER=spec3flow
PARTITION=debug
ACCOUNT=spec3flow
MARKER="# written by spec3flow scripts/slurm/start_local_cluster.sh"
SLURM_CONF=/etc/slurm/slurm.conf
DBD_CONF=/etc/slurm/slurmdbd.conf
LOG=$STATE/log
MYSQL_SOCK=/run/mysqld/mysqld.sock

# elapsed: seconds since start, one decimal (no bc needed)
elapsed() { local ds=$(( ($(date +%s%N) - T0) / 100000000 )); echo "$((ds / 10)).$((ds % 10))"; }
say() { printf '[slurm-start %6ss] %s\n' "$(elapsed)" "$*"; }
die() { say "ERROR: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root (it installs packages and starts daemons)"
command -v apt-get >/dev/null || die "needs a Debian/Ubuntu machine (apt-get)"

# ---------------------------------------------------------------- helpers
. "$(dirname "${BASH_SOURCE[0]}")/pids.sh"   # pid_of, alive_pid, alive

# wait_for DESCRIPTION COMMAND...: retry COMMAND every 0.2 s up to $TIMEOUT s.
wait_for() {
    local what=$1; shift
    local end=$((SECONDS + TIMEOUT))
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $end ] || return 1
        sleep 0.2
    done
    say "$what: ok"
}

# stop_pidfile PIDFILE NAME: TERM the daemon, wait for it to exit (zombie = exited).
stop_pidfile() {
    local pid i
    pid=$(pid_of "$1")
    alive_pid "$pid" "$2" || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 150); do alive_pid "$pid" "$2" || return 0; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.5
}

# ---------------------------------------------------------------- install
need=()
for b in slurmctld slurmd sinfo srun sacct munged; do
    command -v "$b" >/dev/null || need=(slurmctld slurmd slurm-client munge)
done
if [ "$ACCOUNTING" = 1 ]; then
    command -v slurmdbd >/dev/null || need+=(slurmdbd)
    command -v mariadbd >/dev/null || need+=(mariadb-server)
fi
if [ ${#need[@]} -gt 0 ]; then
    say "installing ${need[*]}"
    # Keep the packages' maintainer scripts from starting services themselves
    # (no systemd here; we start the daemons below with our own pid files).
    made_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        made_policy=1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt_ok=0
    for attempt in 1 2; do
        if [ "$attempt" = 2 ] || ! ls /var/lib/apt/lists/*Packages* >/dev/null 2>&1; then
            apt-get update -qq
        fi
        if apt-get install -y -qq --no-install-recommends \
            -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
            "${need[@]}" >"/tmp/spec3flow-slurm-apt.log" 2>&1; then
            apt_ok=1; break
        fi
    done
    [ "$made_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
    [ "$apt_ok" = 1 ] || { tail -20 /tmp/spec3flow-slurm-apt.log >&2; die "apt-get install failed"; }
    say "installed"
fi

# ---------------------------------------------------------------- configs
NODE=$(hostname -s)
NCPU=$(nproc)
mkdir -p "$STATE" "$LOG" "$STATE/ctld" "$STATE/d" "$STATE/munge"
chmod 755 "$STATE"

# slurmd -C: "NodeName=vm CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2
#             ThreadsPerCore=1 RealMemory=24105"
HW=$(slurmd -C | head -1)
hw() { sed -n "s/.*\b$1=\([0-9]*\).*/\1/p" <<<"$HW"; }
REALMEM=$(( $(hw RealMemory) * 9 / 10 ))
LAYOUT="CPUs=$NCPU"
if [ "$(hw CPUs)" = "$NCPU" ]; then
    LAYOUT="CPUs=$NCPU Boards=$(hw Boards) SocketsPerBoard=$(hw SocketsPerBoard) CoresPerSocket=$(hw CoresPerSocket) ThreadsPerCore=$(hw ThreadsPerCore)"
fi

if [ -e "$SLURM_CONF" ] && ! grep -qF "$MARKER" "$SLURM_CONF" && [ "$FORCE" != 1 ]; then
    die "$SLURM_CONF exists and was not written by this script; set SPEC3FLOW_SLURM_FORCE=1 to replace it"
fi

if [ "$ACCOUNTING" = 1 ]; then
    ACCT_LINES="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobAcctGatherType=jobacct_gather/linux
# sample every job step's RSS each 2 s and kill a step above its memory
# request (no cgroups here, so this is how --mem is enforced)
JobAcctGatherFrequency=task=2
JobAcctGatherParams=OverMemoryKill"
else
    ACCT_LINES="AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none"
fi

NEW_CONF=$(cat <<EOF
$MARKER
# One node on 127.0.0.1 for testing; see scripts/slurm/README.md.
ClusterName=$CLUSTER
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
CryptoType=crypto/munge
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# no cgroups (containers, CI): track processes via /proc, no task binding
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# without a default, one job would take all memory of the node
DefMemPerCPU=1000
# keep finished jobs visible to squeue/scontrol for 1 h (squeue status path)
MinJobAge=3600
KillWait=10
InactiveLimit=0
Waittime=0
JobCompType=jobcomp/none
$ACCT_LINES
NodeName=$NODE NodeAddr=127.0.0.1 NodeHostname=$NODE $LAYOUT RealMemory=$REALMEM State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
)
conf_changed=0
if [ ! -e "$SLURM_CONF" ] || [ "$NEW_CONF" != "$(cat "$SLURM_CONF")" ]; then
    mkdir -p /etc/slurm
    printf '%s\n' "$NEW_CONF" >"$SLURM_CONF"
    chmod 644 "$SLURM_CONF"
    conf_changed=1
    say "wrote $SLURM_CONF (node $NODE: $LAYOUT RealMemory=$REALMEM)"
fi

# ---------------------------------------------------------------- munge
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge "$STATE/munge"
chmod 755 /run/munge
if [ ! -s /etc/munge/munge.key ]; then
    mkdir -p /etc/munge
    if command -v mungekey >/dev/null; then mungekey --create --keyfile=/etc/munge/munge.key
    else dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none; fi
    chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key
fi
if alive "$STATE/munge/munged.pid" munged; then
    say "munged already running"
else
    runuser -u munge -- munged --pid-file="$STATE/munge/munged.pid" </dev/null
    wait_for "munged" bash -c 'munge -n | unmunge' || die "munged did not start (see /var/log/munge/munged.log)"
fi

# ---------------------------------------------------------------- accounting
if [ "$ACCOUNTING" = 1 ]; then
    mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld && chmod 755 /run/mysqld
    if [ ! -d /var/lib/mysql/mysql ]; then
        say "initialising MariaDB data dir"
        mariadb-install-db --user=mysql --datadir=/var/lib/mysql >"$LOG/mariadb-install.log" 2>&1
    fi
    mkdir -p "$STATE/mysql" && chown mysql:mysql "$STATE/mysql"
    if alive "$STATE/mysql/mariadb.pid" mariadbd; then
        say "mariadbd already running"
    else
        touch "$LOG/mariadb.log"; chown mysql:mysql "$LOG/mariadb.log"
        setsid mariadbd --user=mysql --pid-file="$STATE/mysql/mariadb.pid" --socket="$MYSQL_SOCK" \
            --bind-address=127.0.0.1 --log-error="$LOG/mariadb.log" \
            --innodb-buffer-pool-size=128M --innodb-lock-wait-timeout=900 \
            </dev/null >/dev/null 2>&1 &
        dbpid=$!
        # fail fast if mariadbd exits (bad permissions, port in use, ...)
        db_up() { kill -0 "$dbpid" 2>/dev/null || exit 3; mariadb --socket="$MYSQL_SOCK" -e 'SELECT 1'; }
        ( wait_for "mariadbd" db_up ) || die "mariadbd did not start (see $LOG/mariadb.log)"
        wait_for "mariadbd pid file" alive "$STATE/mysql/mariadb.pid" mariadbd || die "mariadbd wrote no pid file"
    fi
    # the slurm DB user; its password lives only in slurmdbd.conf (mode 600)
    PASS=$(sed -n 's/^StoragePass=//p' "$DBD_CONF" 2>/dev/null || true)
    [ -n "$PASS" ] || PASS=$(head -c 18 /dev/urandom | base64 | tr -dc A-Za-z0-9)
    mariadb --socket="$MYSQL_SOCK" <<EOF
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$PASS';
ALTER USER 'slurm'@'localhost' IDENTIFIED BY '$PASS';
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
EOF
    NEW_DBD=$(cat <<EOF
$MARKER
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=root
PidFile=$STATE/slurmdbd.pid
LogFile=$LOG/slurmdbd.log
DebugLevel=info
StorageType=accounting_storage/mysql
StorageHost=localhost
StoragePort=3306
StorageUser=slurm
StoragePass=$PASS
StorageLoc=slurm_acct_db
EOF
)
    dbd_changed=0
    if [ ! -e "$DBD_CONF" ] || [ "$NEW_DBD" != "$(cat "$DBD_CONF")" ]; then
        (umask 077; printf '%s\n' "$NEW_DBD" >"$DBD_CONF")
        chmod 600 "$DBD_CONF"
        dbd_changed=1
    fi
    if alive "$STATE/slurmdbd.pid" slurmdbd && [ "$dbd_changed" = 0 ]; then
        say "slurmdbd already running"
    else
        stop_pidfile "$STATE/slurmdbd.pid" slurmdbd
        slurmdbd </dev/null >>"$LOG/slurmdbd.out" 2>&1
        wait_for "slurmdbd" sacctmgr -n list cluster || die "slurmdbd did not start (see $LOG/slurmdbd.log)"
    fi
    if ! sacctmgr -n -P list cluster format=cluster | grep -qx "$CLUSTER"; then
        sacctmgr -i add cluster "$CLUSTER" >/dev/null
    fi
fi

# ---------------------------------------------------------------- slurmctld, slurmd
if [ "$conf_changed" = 1 ]; then
    # a new slurm.conf (first run, or hostname/CPUs/memory changed): restart both
    stop_pidfile "$STATE/slurmd.pid" slurmd
    stop_pidfile "$STATE/slurmctld.pid" slurmctld
fi
if alive "$STATE/slurmctld.pid" slurmctld; then
    say "slurmctld already running"
else
    slurmctld </dev/null >>"$LOG/slurmctld.out" 2>&1
    wait_for "slurmctld" scontrol ping || die "slurmctld did not answer (see $LOG/slurmctld.log)"
fi
if alive "$STATE/slurmd.pid" slurmd; then
    say "slurmd already running"
else
    slurmd -N "$NODE" </dev/null >>"$LOG/slurmd.out" 2>&1
fi

if [ "$ACCOUNTING" = 1 ]; then
    # an account and a user association, so `sacct`/`sacctmgr` and the
    # plugin's account lookup find something (AccountingStorageEnforce is off)
    sacctmgr -n -P list account format=account | grep -qx "$ACCOUNT" \
        || sacctmgr -i add account "$ACCOUNT" cluster="$CLUSTER" description=spec3flow-tests >/dev/null
    for u in root ${SUDO_USER:-}; do
        if ! sacctmgr -n -P list assoc user="$u" account="$ACCOUNT" format=user | grep -qx "$u"; then
            sacctmgr -i add user "$u" account="$ACCOUNT" >/dev/null
            sacctmgr -i modify user "$u" set defaultaccount="$ACCOUNT" >/dev/null
        fi
    done
fi

node_state() { sinfo -h -N -n "$NODE" -o %T 2>/dev/null | head -1; }
node_idle() {
    local s; s=$(node_state)
    case "$s" in
        idle|mixed|allocated) return 0 ;;
        down*|drain*|fail*) scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 || true; return 1 ;;
        *) return 1 ;;
    esac
}
wait_for "node $NODE idle" node_idle || die "node $NODE is '$(node_state)' (see $LOG/slurmd.log, $LOG/slurmctld.log)"
wait_for "srun hostname" timeout 30 srun -N1 -n1 -t 1 --mem=100 hostname \
    || die "srun hostname failed (see $LOG/slurmctld.log, $LOG/slurmd.log)"
say "cluster '$CLUSTER' up: node $NODE, partition $PARTITION, accounting=$ACCOUNTING, state $STATE"
echo "spec3flow local SLURM cluster ready in $(elapsed) s"
