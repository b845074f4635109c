"""Who this process is among the workers of a (possibly multi-process) training job.

Its own module so that `training.distribute` (which strategy) and `training.multi_worker`
(the custom loop) both depend on it and not on each other.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping


@dataclasses.dataclass(frozen=True)
class WorkerInfo:
    """This process's place in a (possibly multi-process) training job."""

    mode: str = "none"
    index: int = 0
    count: int = 1

    @property
    def is_chief(self) -> bool:
        return self.index == 0

    def describe(self) -> str:
        if self.count == 1:
            return f"strategy {self.mode}, single process"
        return f"strategy {self.mode}, worker {self.index + 1} of {self.count}"

    @classmethod
    def from_env(cls, env: Mapping[str, str], mode: str = "multi_worker") -> WorkerInfo:
        """Worker index and count from TF_CONFIG, else from SLURM's task variables."""
        if env.get("TF_CONFIG"):
            tf_config = json.loads(env["TF_CONFIG"])
            cluster = tf_config.get("cluster", {})
            task = tf_config.get("task", {})
            count = sum(len(v) for k, v in cluster.items() if k in ("chief", "worker"))
            index = int(task.get("index", 0)) + (1 if "chief" in cluster and
                                                  task.get("type") == "worker" else 0)
            return cls(mode, index, max(count, 1))
        if env.get("SLURM_JOB_ID") and env.get("SLURM_NTASKS"):
            return cls(mode, int(env.get("SLURM_PROCID", 0)), int(env["SLURM_NTASKS"]))
        return cls(mode, 0, 1)
