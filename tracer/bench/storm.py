"""The storm: the fork/exec/exit workload every tracer is measured under.

Two spawners each loop fork + exec + wait of a copy of /bin/true named
``ptbench-true`` (a comm nothing else has), so every spawn is one fork, one
exec, one exit and one reap. The storm is storm.c, shipped with this package and
compiled into the bench's temporary directory; without a C compiler the
slower Python storm of proctrace.bench.pystorm stands in for it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from proctrace.bench import BenchError, package_file

STORM_COMM = "ptbench-storm"
TRUE_COMM = "ptbench-true"
SPAWNERS = 2

# Event kinds each tool captures for one spawn (the storm's reap is proctrace's alone).
KINDS = {
    "proctrace": ("fork", "exec", "exit", "reap"),
    "bpftrace": ("fork", "exec", "exit"),
    "forkstat": ("fork", "exec", "exit"),
}


def compile_c(name: str, workdir: Path, binary: Path) -> bool:
    """Compile the packaged C program `name` into `binary`; False when there is no compiler."""
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        return False
    source = workdir / name
    source.write_bytes(package_file(name))
    subprocess.run([cc, "-O2", "-o", str(binary), str(source)], check=True, capture_output=True)
    return True


def run_workload(argv: list[str], seconds: float, what: str, new_session: bool = False) -> str:
    """Run a workload of about `seconds` untraced, to its end: its stdout. With
    `new_session`, in a session of its own, as a command under proctrace runs
    (TracerProcess): the scheduler shares the CPUs between sessions first."""
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 120, start_new_session=new_session)
    if done.returncode != 0:
        raise BenchError(f"{what} failed ({done.returncode}): {(done.stderr.strip() or done.stdout.strip())[-500:]}")
    return done.stdout


def parse_storm_line(text: str) -> tuple[int, int, float]:
    """storm's stdout "spawned N failed F seconds T" -> (N, F, T)."""
    m = re.search(r"spawned (\d+) failed (\d+) seconds ([\d.]+)", text)
    if not m:
        raise BenchError(f"the storm did not report its count: {text.strip()!r}")
    return int(m.group(1)), int(m.group(2)), float(m.group(3))


def storm_tree_events(spawned: int, spawners: int) -> int:
    """Events of the storm's whole process tree as `proctrace -- STORM` sees it:
    per spawn a fork, exec, exit and reap; the storm's own exec; a fork, exit and
    reap per spawner; the storm's exit, and its reap by proctrace."""
    return len(KINDS["proctrace"]) * spawned + 1 + 3 * spawners + 2


@dataclass
class StormResult:
    spawned: int
    failed: int
    seconds: float
    pids: set[int]

    @property
    def rate(self) -> float:
        return self.spawned / self.seconds


class Storm:
    """The fork/exec/exit storm, built in `workdir`."""

    def __init__(self, workdir: Path, spawners: int = SPAWNERS) -> None:
        self.workdir = workdir
        self.spawners = spawners
        self.binary = workdir / STORM_COMM
        self.program = workdir / TRUE_COMM
        shutil.copy2("/bin/true", self.program)
        self.kind = "C"
        if not compile_c("storm.c", workdir, self.binary):
            # A launcher named like the storm, so the storm's comm is the same.
            self.kind = "python (no C compiler found)"
            self.binary.write_text(f"#!{sys.executable}\nfrom proctrace.bench.pystorm import main\nmain()\n")
            self.binary.chmod(0o755)

    def argv(self, seconds: float) -> list[str]:
        return [str(self.binary), str(self.spawners), f"{seconds}", str(self.program), str(self.workdir / "pids")]

    def collect(self, stdout: str) -> StormResult:
        """The storm's report and the pids its spawners wrote."""
        spawned, failed, elapsed = parse_storm_line(stdout)
        pids: set[int] = set()
        for i in range(self.spawners):
            path = self.workdir / f"pids.{i}"
            pids.update(int(p) for p in path.read_text().split())
            path.unlink()
        return StormResult(spawned, failed, elapsed, pids)

    def run(self, seconds: float) -> StormResult:
        return self.collect(run_workload(self.argv(seconds), seconds, "the storm"))
