#!/bin/bash
# A single-node SLURM on this machine for tests/test_slurm_real.py (idempotent).
#
# Installs Debian's slurm-wlm and munge when sbatch is missing, writes a slurm.conf naming
# localhost with the machine's CPUs (no cgroups: proctrack/linuxproc, task/none, so it also
# runs in a container), and starts munged, slurmctld and slurmd directly (no systemd).
# Exits 0 when `sinfo` shows the node idle; 2 (with the reason on stderr) when it cannot set
# SLURM up here: not root, no apt-get, the package registry unreachable. Any other failure
# exits 1 with the daemons' logs.
set -u
STATE=${KDMRI_SLURM_STATE:-/var/lib/kdmri-slurm}
CONF_DIR=/etc/slurm
CONF=$CONF_DIR/slurm.conf
say() { echo "setup_slurm: $*" >&2; }
cannot() { say "$*"; exit 2; }

[ "$(id -u)" = 0 ] || cannot "not root (uid $(id -u)): installing packages and starting slurmctld/slurmd need root"

if ! command -v sbatch >/dev/null || ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    command -v apt-get >/dev/null || cannot "no apt-get: install slurm-wlm and munge by hand"
    export DEBIAN_FRONTEND=noninteractive
    apt_retry() {  # another apt-get may hold the lock for a while: wait up to 5 minutes
        local out
        for _ in $(seq 60); do
            out=$("$@" 2>&1) && return 0
            if ! grep -q -e "Could not get lock" -e "Unable to lock" -e "Unable to acquire" <<<"$out"; then
                echo "$out" | tail -n 5 >&2
                return 1
            fi
            sleep 5
        done
        return 1
    }
    apt_retry apt-get update -qq || cannot "apt-get update failed: no network to the Debian package registry?"
    apt_retry apt-get install -y -qq -o Dpkg::Options::=--force-confold slurm-wlm munge \
        || cannot "apt-get install slurm-wlm munge failed (package registry unreachable?)"
fi

HEADER="# written by tests/slurm/setup_slurm.sh: one node, this machine"
if [ -f "$CONF" ] && ! grep -qxF "$HEADER" "$CONF"; then
    cannot "$CONF exists and was not written by this script: not touching a real SLURM set-up"
fi
mkdir -p "$STATE"/{ctld,d,log} "$CONF_DIR" /run/munge /var/log/munge /var/lib/munge /etc/munge
CPUS=$(getconf _NPROCESSORS_ONLN)  # not nproc: it honours OMP_NUM_THREADS
# MEMORY from /proc/meminfo, in MB, less a margin
MEM=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 512 ))
cat > "$CONF.new" <<CONF
$HEADER
ClusterName=kdmri-test
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
KillWait=5
MinJobAge=600
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
Waittime=0
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
changed=1
if [ -f "$CONF" ] && cmp -s "$CONF" "$CONF.new"; then changed=0; fi
mv "$CONF.new" "$CONF"
# slurmd loads a cgroup plugin even when no cgroup task/proctrack plugin is used
printf 'CgroupPlugin=autodetect\nIgnoreSystemd=yes\n' > $CONF_DIR/cgroup.conf

if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
fi
chown -R munge:munge /etc/munge /run/munge /var/log/munge /var/lib/munge 2>/dev/null || true
chmod 0700 /etc/munge; chmod 0400 /etc/munge/munge.key

running() { pgrep -x "$1" >/dev/null; }
if ! running munged; then
    if id munge >/dev/null 2>&1; then
        runuser -u munge -- /usr/sbin/munged || { say "munged did not start"; exit 1; }
    else
        /usr/sbin/munged --force || { say "munged did not start"; exit 1; }
    fi
fi
if [ "$changed" = 1 ] && running slurmctld; then scontrol reconfigure >/dev/null 2>&1 || true; fi
# -c: a fresh controller forgets the jobs of an earlier run (their folders may be gone)
running slurmctld || slurmctld -c -f "$CONF" || { say "slurmctld did not start"; cat "$STATE/log/slurmctld.log" >&2; exit 1; }
running slurmd || slurmd -f "$CONF" -N localhost || { say "slurmd did not start"; cat "$STATE/log/slurmd.log" >&2; exit 1; }

for _ in $(seq 60); do
    state=$(sinfo -h -N -o %t -n localhost 2>/dev/null | head -n 1)
    case "$state" in
        idle|mix|alloc) echo "setup_slurm: node localhost $state ($CPUS CPUs)"; exit 0 ;;
        down*|drain*) scontrol update nodename=localhost state=resume >/dev/null 2>&1 ;;
    esac
    sleep 1
done
say "the node never became idle (state: ${state:-none})"
tail -n 30 "$STATE/log/slurmctld.log" "$STATE/log/slurmd.log" >&2
exit 1
