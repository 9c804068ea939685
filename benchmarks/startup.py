"""Start-up cost: wall time of commands that must not import torch (median of 10 runs each).

    .venv/bin/python benchmarks/startup.py

Target: `bigbench --help` under 0.3 s; none of the commands below imports torch.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

from common import ROOT

COMMANDS = [["--help"], ["config", "validate", "configs/cnn.yaml"], ["models", "--help"]]
PROBE = ("import sys, runpy; sys.argv = ['bigbench'] + sys.argv[1:]\n"
         "try:\n    runpy.run_module('bigbench', run_name='__main__')\n"
         "except SystemExit:\n    pass\n"
         "print('torch imported' if 'torch' in sys.modules else 'torch not imported', "
         "file=sys.stderr)")


def main() -> None:
    bigbench = str(ROOT / ".venv" / "bin" / "bigbench")
    for args in COMMANDS:
        times = []
        for _ in range(10):
            start = time.perf_counter()
            subprocess.run([bigbench, *args], cwd=ROOT, capture_output=True, check=True)
            times.append(time.perf_counter() - start)
        probe = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=ROOT,
                               capture_output=True, text=True)
        print(f"bigbench {' '.join(args):<36} median {statistics.median(times):.3f} s "
              f"(min {min(times):.3f}, max {max(times):.3f}); "
              f"{probe.stderr.strip().splitlines()[-1]}")
    print("target: bigbench --help under 0.300 s, torch never imported")


if __name__ == "__main__":
    main()
