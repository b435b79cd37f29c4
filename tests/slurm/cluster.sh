#!/usr/bin/env bash
# A private single-node SLURM cluster (munged + slurmctld + slurmd) that runs one command and
# then disappears. It must be PID 1 of fresh network/pid/mount/uts namespaces, so nothing it
# starts can reach or be reached from any address outside, and everything dies with it:
#
#   unshare --net --pid --fork --mount-proc --uts --kill-child \
#       bash tests/slurm/cluster.sh STATE_DIR COMMAND [ARGS...]
#
# STATE_DIR (empty or missing) receives the generated config, keys, spool and logs.
# COMMAND runs with SLURM_CONF set; the script exits with COMMAND's status
# (or 90 if the cluster could not be brought up). Partitions: `cpu` (default) and `gpu`,
# both on the one node, which advertises one fake GPU (GRES gpu with /dev/null as its device).
set -euo pipefail

if [ $# -lt 2 ]; then
    echo "usage: $0 STATE_DIR COMMAND [ARGS...]" >&2
    exit 2
fi
if [ "$$" -ne 1 ]; then
    echo "$0: must be PID 1 of a new pid namespace (run it under unshare, see header)" >&2
    exit 2
fi
state=$(realpath -m "$1")
shift
host=fesr-slurm
# Slurm 22.05 wants a non-loopback address for its controller and node; a link-local one
# on the namespace's own `lo` is still unreachable from anywhere else.
addr=169.254.0.1
# More than the machine has (SlurmdParameters=config_overrides), so that the profile's
# per-rule requests (32 GB for training, ...) fit; the tests cap concurrency with --jobs.
cpus=16
mem_mb=64000

mkdir -p "$state"/{etc,spool/ctld,spool/d,run,log,munge,tmp}
ip link set lo up
ip addr add "$addr/32" dev lo
hostname "$host"
# Our own /etc/hosts, visible only in this mount namespace.
printf '127.0.0.1 localhost\n%s %s\n' "$addr" "$host" >"$state/hosts"
mount --bind "$state/hosts" /etc/hosts
# Private shared memory too (PMIx and Open MPI name their segments after job ids, which every
# test cluster numbers from 1).
mount -t tmpfs -o mode=1777,size=1g tmpfs /dev/shm

# munge: a fresh key, socket and state in STATE_DIR (never the system's /etc/munge, /run/munge).
dd if=/dev/urandom of="$state/munge/munge.key" bs=1024 count=1 status=none
chmod 700 "$state/munge"
chmod 400 "$state/munge/munge.key"
munge_socket="$state/munge/munge.socket"
munged --force --key-file="$state/munge/munge.key" --socket="$munge_socket" \
    --pid-file="$state/munge/munged.pid" --log-file="$state/log/munged.log" \
    --seed-file="$state/munge/munged.seed"

cat >"$state/etc/slurm.conf" <<EOF
ClusterName=fesr-test
SlurmctldHost=$host($addr)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$munge_socket
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$state/spool/ctld
SlurmdSpoolDir=$state/spool/d
SlurmctldPidFile=$state/run/slurmctld.pid
SlurmdPidFile=$state/run/slurmd.pid
SlurmctldLogFile=$state/log/slurmctld.log
SlurmdLogFile=$state/log/slurmd.log
SlurmctldDebug=info
MailProg=/bin/true
SlurmdDebug=debug
# No cgroups or accounting in a throw-away namespace.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SwitchType=switch/none
MpiDefault=pmix
# Per-job scratch (PMIx client directories too) stays in STATE_DIR, not the shared /tmp.
TmpFS=$state/tmp
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
ReturnToService=2
SchedulerType=sched/backfill
# Finished jobs stay visible to squeue for 5 minutes: the status source without sacct.
MinJobAge=300
TaskProlog=$state/task_prolog.sh
GresTypes=gpu
NodeName=$host NodeAddr=$addr CPUs=$cpus RealMemory=$mem_mb Gres=gpu:1 State=UNKNOWN
PartitionName=cpu Nodes=$host Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$host Default=NO MaxTime=INFINITE State=UP
EOF
# Every task SLURM launches appends "job step rank ntasks partition gpus" to tasks.log: how
# the tests see that an MPI rule ran its ranks under srun and that training got the GPU.
# (SLURM_CONF is not in a task's environment, so the log path is written into the script.)
cat >"$state/task_prolog.sh" <<EOF
#!/bin/sh
echo "\${SLURM_JOB_ID} \${SLURM_STEP_ID:-batch} \${SLURM_PROCID} \${SLURM_STEP_NUM_TASKS:-\${SLURM_NTASKS}}" \\
    "\${SLURM_JOB_PARTITION:--} \${CUDA_VISIBLE_DEVICES:--}" >>"$state/tasks.log"
EOF
chmod 755 "$state/task_prolog.sh"
printf 'AutoDetect=off\nNodeName=%s Name=gpu File=/dev/null\n' "$host" >"$state/etc/gres.conf"
printf 'PMIxCliTmpDirBase=%s\n' "$state/tmp" >"$state/etc/mpi.conf"
# Job steps look for the config at the default path (they do not inherit SLURM_CONF), so
# this mount namespace gets our config directory as its /etc/slurm.
mount --bind "$state/etc" /etc/slurm
export SLURM_CONF=/etc/slurm/slurm.conf

shutdown_cluster() {
    scontrol shutdown >/dev/null 2>&1 || true
    sleep 1
    kill "$(cat "$state/munge/munged.pid" 2>/dev/null)" 2>/dev/null || true
    # Anything still alive is killed by the kernel when this PID 1 exits.
}
trap shutdown_cluster EXIT

slurmctld -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF" -N "$host"

# Wait for the node to register and become schedulable.
for _ in $(seq 1 60); do
    state_now=$(sinfo -h -n "$host" -o %T 2>/dev/null | head -n1 || true)
    case "$state_now" in
        idle*|mixed*|allocated*) break ;;
    esac
    sleep 1
done
case "${state_now:-}" in
    idle*|mixed*|allocated*) ;;
    *)
        echo "cluster.sh: node never became idle (state '${state_now:-none}'); logs:" >&2
        tail -n 30 "$state"/log/*.log >&2 || true
        exit 90
        ;;
esac

set +e
"$@"
rc=$?
set -e
exit "$rc"
