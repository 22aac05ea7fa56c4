"""Run every benchmark of bench/ and write one markdown table of their figures for this machine.

Each benchmark runs as its own process (so peak-memory figures are its own); its printed
figures go into the table beside the command and its wall time. The header records the
machine (CPU, cores, memory, GPU if any) and the software (Python, TensorFlow, Keras).

    python bench/run_all.py                      # quick sizes, ~15-25 min on 2 cores
    python bench/run_all.py --full               # each benchmark's own defaults (hours on CPU)
    python bench/run_all.py --out bench/results_mybox.md --only turbulence,dm2gal
"""
import argparse
import datetime
import os
import platform
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
# benchmark -> (quick arguments, full arguments); the *_gpu_jax ones run only with --gpu.
BENCHMARKS = {
    "field_statistics": (["--cases", "pk3d,bispectrum", "--repeats", "1"], []),
    "mim3d_step": (["--grids", "16", "--steps", "1"], []),
    "mim3d_conv_bound": ([], []),
    "mim3d_bfloat16_accuracy": (["--grid", "8", "--iterations", "20"], []),
    "multifield_gan": (["--resolutions", "64", "--steps", "2", "--eval-maps", "100"], []),
    "dm2gal": (["--grid", "64", "--window", "33", "--ch", "16", "--batches", "2",
                "--particles", "1000000"], []),
    "turbulence": (["--size", "128", "--snapshots", "2", "--tile", "64", "--epochs", "8",
                    "--speed-tile", "64", "--steps", "3"], []),
    "jit_compile": ([], []),
    "sn_forecast": (["--quick"], []),
    "mim3d_gpu_jax": (["--grids", "16", "--steps", "2"], []),
    "models_gpu_jax": (["--steps", "5"], []),
}
GPU_ONLY = {"mim3d_gpu_jax", "models_gpu_jax"}


def _machine():
    """One line each: host, CPU, cores, memory, GPU, software."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    try:
        gpu = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True,
                             timeout=30).stdout.strip() or "none"
    except (OSError, subprocess.SubprocessError):
        gpu = "none"
    versions = subprocess.run(
        [sys.executable, "-c", "import tensorflow as tf, keras; print(tf.__version__, "
         "keras.__version__)"], capture_output=True, text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}).stdout.split()
    return [f"host: {socket.gethostname()}", f"CPU: {cpu}, {os.cpu_count()} cores",
            f"memory: {memory:.1f} GiB", f"GPU: {gpu}",
            f"Python {platform.python_version()}, TensorFlow {versions[0] if versions else '?'}, "
            f"Keras {versions[1] if len(versions) > 1 else '?'}",
            f"load average at start: {os.getloadavg()[0]:.2f}",
            f"date: {datetime.datetime.now():%Y-%m-%d %H:%M}"]


def _figures(output):
    """The benchmark's printed lines, as one markdown table cell."""
    lines = [line.rstrip() for line in output.splitlines() if line.strip()
             and not line.startswith(("WARNING", "I0000", "W0000", "E0000"))]
    return "<br>".join(line.replace("|", "\\|") for line in lines) or "(no output)"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--full", action="store_true", help="each benchmark's own defaults")
    parser.add_argument("--gpu", action="store_true", help="also the JAX GPU benchmarks")
    parser.add_argument("--only", default="", help="comma-separated benchmarks")
    parser.add_argument("--out", default="", help="markdown file (default "
                        "bench/results_<host>.md)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per benchmark")
    args = parser.parse_args()
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"--only: unknown benchmark(s) {', '.join(unknown)}; expected some of "
                     f"{', '.join(BENCHMARKS)}")
    out = args.out or os.path.join(HERE, f"results_{socket.gethostname()}.md")
    if os.path.exists(out) and not args.overwrite:
        parser.error(f"--out {out}: exists; pass --overwrite to replace it")

    rows = []
    for name in names:
        script = os.path.join(HERE, f"{name}.py")
        if name in GPU_ONLY and not args.gpu:
            continue
        extra = BENCHMARKS[name][1 if args.full else 0]
        command = f"python bench/{name}.py {' '.join(extra)}".strip()
        print(f"running {command}", flush=True)
        t0 = time.time()
        try:
            run = subprocess.run([sys.executable, script, *extra], capture_output=True,
                                 text=True, timeout=args.timeout,
                                 env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
            figures = _figures(run.stdout)
            if run.returncode:
                figures += f"<br>**failed (exit {run.returncode})**: " + _figures(run.stderr[-500:])
        except subprocess.TimeoutExpired:
            figures = f"**timed out after {args.timeout} s**"
        rows.append(f"| {name} | `{command}` | {time.time() - t0:.0f} | {figures} |")

    text = ["# tfastro benchmarks", "", *[f"- {line}" for line in _machine()], "",
            "| benchmark | command | wall s | figures |", "|---|---|---|---|", *rows, ""]
    with open(out, "w") as f:
        f.write("\n".join(text))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
