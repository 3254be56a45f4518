#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, to try the cluster profiles without a cluster:
#
#   sudo workflow/cluster/local-slurm.sh start    # munge + slurmctld + slurmd, one CPU partition "cpu"
#   nasforge pipeline --profile workflow/profiles/slurm-cpu
#   sudo workflow/cluster/local-slurm.sh stop
#
# Needs root and Debian's packages: apt-get install slurm-wlm munge (SLURM 22.05 on Debian 12).
# No accounting database: the profiles ask SLURM for job states with squeue, which sees a finished
# job for MinJobAge seconds (set high here). The node is described by `slurmd -C` (this machine's real
# CPUs and memory). State, logs and spool live under $NASFORGE_SLURM_STATE (default /tmp/nasforge-slurm).
# `start` refuses to overwrite an /etc/slurm/slurm.conf it did not write.
set -euo pipefail

STATE=${NASFORGE_SLURM_STATE:-/tmp/nasforge-slurm}
CONF=/etc/slurm/slurm.conf
MARK="# written by nasforge workflow/cluster/local-slurm.sh"

die() { echo "local-slurm: $*" >&2; exit 2; }

preflight() {
  [ "$(id -u)" = 0 ] || die "needs root (it starts munged, slurmctld and slurmd); rerun with sudo"
  for bin in munged slurmctld slurmd sinfo sbatch; do
    command -v "$bin" >/dev/null || die "$bin not found; install the packages: apt-get install slurm-wlm munge"
  done
}

start_munge() {
  if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then return; fi
  [ -s /etc/munge/munge.key ] || { mungekey --create --keyfile=/etc/munge/munge.key 2>/dev/null \
    || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none; }
  chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
  mkdir -p /run/munge /var/log/munge /var/lib/munge && chown munge:munge /run/munge /var/log/munge /var/lib/munge
  runuser -u munge -- munged --force
  for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return; sleep 0.1; done
  die "munged did not start (see /var/log/munge/munged.log)"
}

write_conf() {
  if [ -f "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
    die "$CONF exists and was not written by this script; this machine has a SLURM setup of its own"
  fi
  local node host
  node=$(slurmd -C | head -1)  # NodeName=... CPUs=... RealMemory=...: the machine as slurmd sees it
  host=$(hostname -s)
  mkdir -p "$STATE/ctld" "$STATE/d" "$STATE/log" "$STATE/run" /etc/slurm
  cat > "$CONF" <<EOF
$MARK
ClusterName=nasforge-local
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/run/slurmctld.pid
SlurmdPidFile=$STATE/run/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
MinJobAge=3600
SlurmdTimeout=30
$node State=UNKNOWN
PartitionName=cpu Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
}

start() {
  preflight
  if sinfo -h >/dev/null 2>&1; then echo "local-slurm: already running"; sinfo; return; fi
  start_munge
  write_conf
  slurmctld -c  # -c: a clean state, no jobs from an earlier run
  slurmd
  for _ in $(seq 100); do
    state=$(sinfo -h -o %T 2>/dev/null | head -1 || true)
    case "$state" in idle|mixed|allocated) sinfo; return ;; esac
    sleep 0.2
  done
  die "the node did not come up (state '${state:-none}'); logs: $STATE/log/"
}

stop() {
  [ "$(id -u)" = 0 ] || die "needs root; rerun with sudo"
  scancel --full --user=root 2>/dev/null || true
  for daemon in slurmd slurmctld; do
    pidfile="$STATE/run/$daemon.pid"
    if [ -f "$pidfile" ]; then
      pid=$(cat "$pidfile")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      rm -f "$pidfile"
    fi
  done
  if [ -f "$CONF" ] && grep -qF "$MARK" "$CONF"; then rm -f "$CONF"; fi
  echo "local-slurm: stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) sinfo && squeue ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
