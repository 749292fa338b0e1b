"""benchperf.py — where the broker spends its CPU during one move (bench/forward --perf DIR).

`perf record` samples the broker's VM (every scheduler thread of beam.smp) at HZ while a mover
moves the preload; the VM was started with `+JPperf true`, so the JIT writes
/tmp/perf-PID.map and perf names the Erlang functions it compiled. Each sample is put in one
bucket by the function it landed in, and a bucket's samples become broker CPU µs per event
moved (samples / HZ / events). The buckets are coarse on purpose: they answer "is the difference
between two movers in RabbitMQ's own Erlang code, in the runtime, or in memory the kernel hands
out", which is what the issue's "show why" asks. Debian's beam.smp is stripped: only the
runtime's exported functions have names (term copying, hashing, the allocators' entry points);
its static functions — the garbage collector among them — land in "erts unnamed".
"""

import collections
import re
import signal
import subprocess

HZ = 999

# Named runtime functions by what they do; the first match wins.
NAMED = [
    ("erts: gc", re.compile(r"garbage_collect|sweep|gen_gc|erts_gc|gc_after_bif|shrink_new_heap")),
    ("erts: copy", re.compile(r"copy_struct|size_object|copy_shallow|erts_copy|enc_term|dec_term|"
                              r"erts_encode|erts_decode|term_to_binary|binary_to_term|memmove|"
                              r"memcpy")),
]
KERNEL_MEMORY = re.compile(r"clear_page|page_fault|do_anonymous|handle_mm_fault|alloc_pages|"
                           r"rmqueue|zap_|unmap|mmap|madvise|memcg|lru|folio|free_pages|"
                           r"release_pages|tlb|pte")
ORDER = ["erlang code", "erts: gc", "erts: copy", "erts: other", "erts unnamed",
         "kernel: memory", "kernel: other"]


def available():
    """Why --perf cannot run here, or None."""
    try:
        subprocess.run(["perf", "--version"], capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return "perf not found (Debian package linux-perf)"
    return None


class Recording:
    """perf record of pids into path from construction to stop()."""

    def __init__(self, pids, path):
        self.path = path
        self.proc = subprocess.Popen(
            ["perf", "record", "-q", "-F", str(HZ), "-p", ",".join(str(p) for p in pids),
             "-o", path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=60)


def bucket(dso, sym):
    if dso.startswith("[kernel"):
        return "kernel: memory" if KERNEL_MEMORY.search(sym) else "kernel: other"
    if sym.startswith("$") or "perf-" in dso or dso.startswith("[JIT"):
        return "erlang code"
    if sym == "[unknown]":
        return "erts unnamed"
    for name, pat in NAMED:
        if pat.search(sym):
            return name
    return "erts: other"


def analyse(path, events):
    """({bucket: µs per event}, [(Erlang module, µs per event)] of the busiest modules, total
    µs per event) from the recording at path."""
    # -f: the JIT's map file belongs to the broker's user, not to the one reading it
    out = subprocess.run(["perf", "script", "-f", "-i", path, "-F", "ip,sym,dso"],
                         capture_output=True, text=True, errors="replace").stdout
    per_bucket = collections.Counter()
    per_module = collections.Counter()
    n = 0
    for line in out.splitlines():
        m = re.match(r"\s*[0-9a-f]+\s+(.*?)\s+\((.*)\)$", line)
        if not m:
            continue
        sym, dso = m.group(1), m.group(2)
        b = bucket(dso, sym)
        per_bucket[b] += 1
        if b == "erlang code" and sym.startswith("$") and ":" in sym:
            per_module[sym[1:].split(":", 1)[0]] += 1
        n += 1
    us = 1e6 / HZ / max(1, events)
    return ({b: per_bucket[b] * us for b in ORDER},
            [(mod, c * us) for mod, c in per_module.most_common(6)], n * us)
