"""How a task ran: peak memory, and GPU memory and utilisation sampled through NVML.

NVML (the ``nvidia-ml-py`` package, in the ``gpu`` extra) is imported only when a GPU is
visible to the process, so CPU machines and SLURM jobs on fake GPUs pay nothing for it.
"""

from __future__ import annotations

import os
import resource
import threading
from pathlib import Path

# Any: NVML handles (pynvml ships no types).
from typing import Any


def gpu_visible() -> bool:
    """Whether an NVIDIA driver is present and the process may use a device."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    return Path("/dev/nvidiactl").exists()


def peak_rss_gb() -> float:
    """This process's peak resident memory so far, in GiB."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3)


class GpuMonitor:
    """Samples every visible GPU's memory in use and utilisation every ``interval_s``.

    Use as a context manager around the work; :meth:`peak_mem_gb` and :meth:`util_mean`
    are None where no GPU could be read.
    """

    def __init__(self, interval_s: float = 1.0):
        self.interval_s = interval_s
        self._nvml: Any = None
        self._handles: list[Any] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._peak_bytes = 0
        self._util: list[float] = []

    def __enter__(self) -> GpuMonitor:
        if not gpu_visible():
            return self
        try:
            import pynvml

            pynvml.nvmlInit()
            count = pynvml.nvmlDeviceGetCount()
            self._handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
            self._nvml = pynvml
        except Exception:  # no NVML (a fake GPU, a missing library): no GPU figures
            return self
        self._sample()
        self._thread = threading.Thread(target=self._run, name="gpu-monitor", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._nvml is not None:
            self._sample()
            try:
                self._nvml.nvmlShutdown()
            except Exception:  # shutting down a library that already went away
                pass

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def _sample(self) -> None:
        try:
            used = sum(self._nvml.nvmlDeviceGetMemoryInfo(h).used for h in self._handles)
            util = [self._nvml.nvmlDeviceGetUtilizationRates(h).gpu for h in self._handles]
        except Exception:  # a device that stopped answering: keep what was sampled
            return
        self._peak_bytes = max(self._peak_bytes, used)
        if util:
            self._util.append(sum(util) / len(util))

    @property
    def peak_mem_gb(self) -> float | None:
        return round(self._peak_bytes / 2**30, 3) if self._handles else None

    @property
    def util_mean(self) -> float | None:
        return round(sum(self._util) / len(self._util), 1) if self._util else None
