"""Takes a given number of cores for a while, in short bursts like a server's requests.

bench_load runs it beside the background job with the cores the API and locust took in a round:
the job's rate beside it is the best the job can do when that much CPU goes elsewhere on the same
machine, whatever the CPU is spent on. Usage: python -m bench.cpu_burner CORES SECONDS
"""

from __future__ import annotations

import math
import subprocess
import sys
import time

PERIOD_S = 0.005  # a burst at most this long, then a sleep: the scheduler sees a request-like load


def burn(duty: float, seconds: float) -> None:
    """Busy for `duty` of every period (one core at most: one Python thread)."""
    end = time.monotonic() + seconds
    cpu_target = 0.0
    start_cpu = time.process_time()
    while (now := time.monotonic()) < end:
        cpu_target += duty * PERIOD_S
        while time.process_time() - start_cpu < cpu_target:
            pass
        # Sleep to the period's end; CPU owed (the process was descheduled) is made up next time.
        time.sleep(max(PERIOD_S - (time.monotonic() - now), 0.0))


def main() -> None:
    cores, seconds = float(sys.argv[1]), float(sys.argv[2])
    if cores <= 0:
        time.sleep(seconds)
        return
    n = math.ceil(cores)
    duty = cores / n
    others = [
        subprocess.Popen(
            [sys.executable, "-c", f"from bench.cpu_burner import burn; burn({duty}, {seconds})"]
        )
        for _ in range(n - 1)
    ]
    burn(duty, seconds)
    for proc in others:
        proc.wait()


if __name__ == "__main__":
    main()
