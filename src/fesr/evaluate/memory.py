"""Peak memory of a block of inference code, on CPU or CUDA.

CUDA: ``torch.cuda.max_memory_allocated`` over the block. CPU: torch's allocator is invisible to
tracemalloc, so a sampler thread polls the process RSS every few milliseconds; the reported
figure is the peak RSS during the block minus the RSS before it (the memory the block added).
"""

from __future__ import annotations

import threading
import time

import psutil
import torch


class PeakMemory:
    """``with PeakMemory(device) as pm: ...``; then ``pm.peak_mb``."""

    def __init__(self, device, interval: float = 0.005):
        self.device = torch.device(device)
        self.interval = interval
        self.peak_mb = float("nan")

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
            return self
        self._proc = psutil.Process()
        self._base = self._peak = self._proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def _poll(self):
        while not self._stop.is_set():
            self._peak = max(self._peak, self._proc.memory_info().rss)
            time.sleep(self.interval)

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device)
        else:
            self._stop.set()
            self._thread.join()
            peak = max(self._peak, self._proc.memory_info().rss)
        self.peak_mb = (peak - self._base) / 2**20
        return False
