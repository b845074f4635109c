"""A throwaway one-node SLURM cluster on localhost, for the end-to-end batch-job test.

Debian's slurm-wlm and munge (installed by .ci/run where it runs as root). Everything the
cluster writes (config, state, spool, logs, PID files) lives in one folder; munged uses the
system paths (/run/munge, /etc/munge/munge.key) and is left running if it already was.

    reason = unavailable_reason()          # None when a cluster can be brought up here
    with local_slurm_cluster(tmp_path / "slurm") as cluster:
        subprocess.run(["sbatch", "--wait", "job.sh"], env=cluster.env(os.environ))
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

COMMANDS = ("munged", "mungekey", "munge", "unmunge", "slurmctld", "slurmd", "sbatch", "sinfo",
           "srun", "squeue", "scancel")
MUNGE_KEY = Path("/etc/munge/munge.key")
MUNGE_RUN_DIR = Path("/run/munge")
NODE = "localhost"


class SlurmClusterError(RuntimeError):
    """The local cluster did not come up (the message ends with the daemon's log tail)."""


def unavailable_reason() -> str | None:
    """Why no local SLURM cluster can be started here, or None when one can."""
    missing = [name for name in COMMANDS if shutil.which(name) is None]
    if missing:
        return (f"SLURM/munge not installed (no {', '.join(missing)}); "
                "`apt-get install slurm-wlm munge` as root (.ci/run does)")
    if os.geteuid() != 0:
        return "the local SLURM cluster needs root (slurmd runs jobs as their user)"
    try:
        import pwd

        pwd.getpwnam("munge")
    except KeyError:
        return "no 'munge' user (the munge package creates it)"
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def node_resources() -> tuple[int, int]:
    """CPUs and memory (MB) slurmd will find on this machine (a little memory kept back)."""
    cpus = len(os.sched_getaffinity(0))
    mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal:"))
    return cpus, max(mem_kb // 1024 - 512, 256)


def slurm_conf(root: Path, *, ctld_port: int, slurmd_port: int) -> str:
    """slurm.conf of the one-node cluster: no accounting, no cgroups, all paths under `root`."""
    cpus, mem_mb = node_resources()
    return "\n".join([
        "ClusterName=beamwatchtest",
        f"SlurmctldHost={NODE}",
        f"SlurmctldPort={ctld_port}",
        f"SlurmdPort={slurmd_port}",
        "SlurmUser=root",
        "SlurmdUser=root",
        "AuthType=auth/munge",
        f"StateSaveLocation={root / 'state'}",
        f"SlurmdSpoolDir={root / 'spool'}",
        f"SlurmctldPidFile={root / 'slurmctld.pid'}",
        f"SlurmdPidFile={root / 'slurmd.pid'}",
        f"SlurmctldLogFile={root / 'slurmctld.log'}",
        f"SlurmdLogFile={root / 'slurmd.log'}",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "SwitchType=switch/none",
        "MpiDefault=none",
        "ReturnToService=2",
        "SchedulerType=sched/backfill",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core",
        "AccountingStorageType=accounting_storage/none",
        "JobAcctGatherType=jobacct_gather/none",
        "JobCompType=jobcomp/none",
        "SlurmctldTimeout=30",
        "SlurmdTimeout=30",
        "InactiveLimit=0",
        "KillWait=5",
        "MinJobAge=300",
        f"NodeName={NODE} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={mem_mb} State=UNKNOWN",
        f"PartitionName=debug Nodes={NODE} Default=YES MaxTime=INFINITE State=UP",
        "",
    ])


class LocalSlurmCluster:
    """slurmctld + slurmd (and munged if none runs) for one node; `start()`, then `stop()`."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.conf = self.root / "slurm.conf"
        self._started_munged = False

    def env(self, base: Mapping[str, str]) -> dict[str, str]:
        """`base` plus SLURM_CONF, so sbatch/sinfo talk to this cluster."""
        return {**base, "SLURM_CONF": str(self.conf)}

    def start(self, timeout: float = 30.0) -> LocalSlurmCluster:
        for sub in ("state", "spool"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.conf.write_text(slurm_conf(self.root, ctld_port=free_port(), slurmd_port=free_port()))
        self._start_munged()
        env = self.env(os.environ)
        # -c: a clean start (no saved state); -N: this machine is node "localhost".
        self._run(["slurmctld", "-f", str(self.conf), "-c"], env, "slurmctld")
        self._run(["slurmd", "-f", str(self.conf), "-N", NODE], env, "slurmd")
        self._wait_idle(env, timeout)
        return self

    def stop(self, timeout: float = 15.0) -> None:
        """Stops the daemons by their PID files (and munged, if this cluster started it)."""
        pid_files = [self.root / "slurmd.pid", self.root / "slurmctld.pid"]
        if self._started_munged:
            pid_files.append(MUNGE_RUN_DIR / "munged.pid")
        for pid_file in pid_files:
            _terminate(pid_file, timeout)

    def log_tail(self, lines: int = 15) -> str:
        out = []
        for name in ("slurmctld.log", "slurmd.log"):
            path = self.root / name
            if path.exists():
                text = path.read_text(errors="replace").splitlines()[-lines:]
                out.append(f"--- {path}\n" + "\n".join(text))
        return "\n".join(out)

    def _start_munged(self) -> None:
        if _munge_works():
            return
        if not MUNGE_KEY.exists():
            subprocess.run(["mungekey", "--create", "--keyfile", str(MUNGE_KEY)], check=True,
                           capture_output=True)
        shutil.chown(MUNGE_KEY, "munge", "munge")
        MUNGE_KEY.chmod(0o600)
        for folder in (MUNGE_RUN_DIR, Path("/var/lib/munge"), Path("/var/log/munge")):
            folder.mkdir(parents=True, exist_ok=True)
            shutil.chown(folder, "munge", "munge")
        MUNGE_RUN_DIR.chmod(0o755)
        subprocess.run(["runuser", "-u", "munge", "--", "munged"], check=True,
                       capture_output=True, text=True)
        self._started_munged = True
        deadline = time.monotonic() + 10
        while not _munge_works():
            if time.monotonic() > deadline:
                raise SlurmClusterError("munged started but `munge -n | unmunge` fails")
            time.sleep(0.2)

    def _run(self, cmd: list[str], env: dict[str, str], name: str) -> None:
        result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=30)
        if result.returncode != 0:
            raise SlurmClusterError(f"{name} failed to start ({result.returncode}): "
                                    f"{result.stderr.strip()}\n{self.log_tail()}")

    def _wait_idle(self, env: dict[str, str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            result = subprocess.run(["sinfo", "-h", "-n", NODE, "-o", "%T"], env=env,
                                    capture_output=True, text=True, timeout=10)
            state = result.stdout.strip()
            if state == "idle":
                return
            time.sleep(0.2)
        raise SlurmClusterError(f"node {NODE} not idle after {timeout:.0f} s (state "
                                f"{state!r})\n{self.log_tail()}")


@contextlib.contextmanager
def local_slurm_cluster(root: Path, timeout: float = 30.0) -> Iterator[LocalSlurmCluster]:
    """A started cluster in `root`; stopped on exit, also when startup fails half-way."""
    cluster = LocalSlurmCluster(root)
    try:
        yield cluster.start(timeout)
    finally:
        cluster.stop()


def _munge_works() -> bool:
    try:
        cred = subprocess.run(["munge", "-n"], capture_output=True, timeout=5)
        if cred.returncode != 0:
            return False
        return subprocess.run(["unmunge"], input=cred.stdout, capture_output=True,
                              timeout=5).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _terminate(pid_file: Path, timeout: float) -> None:
    """SIGTERM the process named in `pid_file`, wait for it, SIGKILL if it lingers."""
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
