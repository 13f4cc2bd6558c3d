"""A real one-node Slurm cluster on this machine, for the profile test: Debian's slurm-wlm and munge
(installed when missing), state and spool under a temporary folder, daemons stopped by their PIDs.

Its slurm.conf goes to Slurm's default location, /etc/slurm/slurm.conf (removed afterwards): the Slurm
executor's job steps call `srun` with every SLURM_* variable but a few removed, SLURM_CONF included, so a
config elsewhere is not found inside a job (as on a real cluster, where the config is at that place or
served by slurmctld). A machine that already has a Slurm config is left alone: the cluster refuses to start.

The node declares one GPU as a generic resource without a device file, so that rules asking for
`gpu: 1` (as the slurm profile's GPU rules do) are scheduled, and serialised, as on a GPU cluster;
the jobs themselves run on the CPU (the test's config pins `device: cpu`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Iterator

PACKAGES = ("slurm-wlm", "munge")


def ensure_installed() -> str | None:
    """Install slurm-wlm and munge with apt when missing; None when ready, else why not."""
    if shutil.which("slurmctld") and shutil.which("munged"):
        return None
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return "slurm-wlm/munge missing and cannot be installed here (needs root and apt-get)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *PACKAGES]):
        run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        if run.returncode != 0:
            return f"{' '.join(cmd)} failed: {run.stderr[-500:]}"
    return None


SLURM_CONF = """\
ClusterName=selfdevtest
SlurmctldHost={host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
{gres_types}ReturnToService=2
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
MinJobAge=300
InactiveLimit=0
KillWait=5
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={mem}{node_gres} State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


DEFAULT_CONF = Path("/etc/slurm/slurm.conf")


class Cluster:
    def __init__(self, root: Path):
        self.root = root
        self.conf = DEFAULT_CONF
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}
        self.pidfiles: list[Path] = []

    def cmd(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        run = subprocess.run(list(args), env=self.env, capture_output=True, text=True, timeout=60)
        if check and run.returncode != 0:
            raise RuntimeError(f"{' '.join(args)}: {run.stderr.strip()}")
        return run

    def log(self) -> str:
        return (self.root / "slurmctld.log").read_text(errors="replace")


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise RuntimeError(f"timed out waiting for {what}")


@contextlib.contextmanager
def one_node_cluster(root: Path, cpus: int = 2, mem_mb: int = 8000, gpus: int = 0) -> Iterator[Cluster]:
    """Start munged, slurmctld and slurmd (state under `root`); stop them by PID afterwards. `gpus` > 0
    gives the node that many generic GPUs without a device file (GPU jobs are scheduled as on a GPU
    cluster and run on the CPU); 0: a node without any GRES, where a job asking for a GPU is refused."""
    root.mkdir(parents=True, exist_ok=True)
    for d in ("state", "spool", "munge"):
        (root / d).mkdir(exist_ok=True)
    host = socket.gethostname().split(".")[0]
    cluster = Cluster(root)
    gres = cluster.conf.with_name("gres.conf")
    if cluster.conf.exists() or gres.exists():
        raise RuntimeError(f"{cluster.conf.parent} already holds a Slurm config: not starting a test cluster here")
    cluster.conf.parent.mkdir(parents=True, exist_ok=True)
    cluster.conf.write_text(SLURM_CONF.format(host=host, root=root, cpus=cpus, mem=mem_mb,
                                              ctld_port=_free_port(), d_port=_free_port(),
                                              gres_types="GresTypes=gpu\n" if gpus else "",
                                              node_gres=f" Gres=gpu:{gpus}" if gpus else ""))
    if gpus:
        gres.write_text(f"AutoDetect=off\nNodeName={host} Name=gpu Count={gpus} File=/dev/null\n")
    key = root / "munge" / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    sock = root / "munge" / "munge.socket"
    started: list[Path] = []
    try:
        subprocess.run(["munged", f"--key-file={key}", f"--socket={sock}", f"--pid-file={root / 'munge' / 'munged.pid'}",
                        f"--log-file={root / 'munge' / 'munged.log'}", f"--seed-file={root / 'munge' / 'seed'}", "--force"],
                       check=True, capture_output=True, timeout=30)
        started.append(root / "munge" / "munged.pid")
        # Slurm finds munge's socket through its AuthInfo setting.
        with cluster.conf.open("a") as f:
            f.write(f"AuthInfo=socket={sock}\n")
        for daemon, pid in (("slurmctld", "slurmctld.pid"), ("slurmd", "slurmd.pid")):
            subprocess.run([daemon, "-f", str(cluster.conf)], env=cluster.env, check=True, capture_output=True, timeout=30)
            started.append(root / pid)
        _wait(lambda: "idle" in cluster.cmd("sinfo", "-h", "-o", "%T", check=False).stdout, 60, "the node to be idle")
        yield cluster
    finally:
        for pidfile in reversed(started):
            with contextlib.suppress(Exception):
                os.kill(int(pidfile.read_text().split()[0]), 15)
        time.sleep(1)
        cluster.conf.unlink(missing_ok=True)
        gres.unlink(missing_ok=True)
