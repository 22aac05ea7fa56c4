"""Speed and peak memory of tfastro's field statistics beside Pylians3, powerbox and numpy.

Cases, on the same seeded inputs for every implementation:
  pk3d        3D P(k) of white noise at 128^3, 256^3 and 512^3 (box 1000 h^-1 Mpc): tfastro
              power_spectrum, Pylians Pk_library.Pk (--threads, MAS None), powerbox
              get_power, numpy (the last two not at 512^3).
  cross2d     auto and cross spectra of --maps 3-channel 256^2 maps (correlated white noise,
              box 25 h^-1 Mpc): tfastro cross_spectra on the whole batch in one call, and
              --chunk maps per call (tfastro-chunked); numpy and powerbox map by map and pair
              by pair on the first --subset maps, their times scaled to all the maps.
  bispectrum  B and Q of a 128^3 quadratic (non-Gaussian) field, box 500 h^-1 Mpc, k1 = 0.3,
              k2 = 0.4 h/Mpc, 25 angles in [0, pi]: tfastro bispectrum (its triangle counts,
              which depend on the grid and the shells only, are cached after the first call;
              tfastro-nocache clears that cache before every call), numpy (Pylians' FFT shell
              estimator as written: two inverse FFTs per angle). powerbox has no bispectrum.
  cic         CIC of --particles uniform float32 positions onto 256^3: tfastro mass_assignment,
              numpy (np.bincount per cell corner).
  precision   P(k) of white noise at 256^3 and 512^3: the largest relative difference in any
              bin between tfastro power_spectrum and a float64 numpy computation (rfftn of the
              float64 field, bins summed by np.bincount).
  mas         NGP, CIC, TSC and PCS mass assignment of 10^6 and 10^7 uniform float32
              particles onto 128 and 256 cells a side, 2D and 3D: tfastro mass_assignment
              (default backend) and Pylians MAS_library.MA (single-threaded) in one process
              per configuration, calls alternating, --repeats + 1 each, the minimum kept.

Pylians3 is not a dependency: its columns appear when ``import MAS_library, Pk_library``
works (e.g. PYTHONPATH holding a ``pip install --target`` of Pylians). After each case the
ratios tfastro / Pylians and tfastro / powerbox of the median time and the extra memory are
printed.

The numpy estimator is the bench's own independent baseline, with Pylians' conventions: rfftn,
bins floor(|k| / k_F) - 1 over the independent modes, P = |delta_k|^2 L^d / N^(2d). powerbox
runs with the same bin edges, Pylians' normalisation (a = b = 1, dimensionless=False) and
numpy's FFT (nthreads=1; its pyFFTW path is optional); it averages over the full grid, where a
self-conjugate mode counts once and a conjugate pair twice, so it differs from Pylians in the
few bins that hold self-conjugate modes (12% in the corner bin of a 128^3 grid, which has 4).

Each implementation of each case runs in a fresh process. Seconds: the first call (it fills
caches, traces and compiles) and the median of --repeats calls after it. Memory (Linux /proc):
"extra MB" is the peak resident memory during the calls (VmHWM, reset just before the first
call) minus the resident memory before it (imports and inputs); "peak MB" is that peak itself.
"vs numpy" is max|x - x_numpy| / max|x_numpy| on the compared output.

    python bench/field_statistics.py                         # all cases, about 8 minutes
    python bench/field_statistics.py --cases pk3d,mas --repeats 5

Reference (Pylians3, 2 threads): 0.51 s for a 256^3 P(k), 0.65 s for the 128^3 bispectrum
over 25 angles, 0.74 s for CIC of 10^7 particles onto 256^3; powerbox 1.9 s for a 256^3 P(k).
Targets for tfastro: 256^3 P(k) under 0.2 s; bispectrum and CIC no slower than Pylians.
"""
import argparse
import functools
import json
import math
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

CASES = {  # case: (sizes, implementations)
    "pk3d": ((128, 256, 512), ("tfastro", "pylians", "powerbox", "numpy")),
    "cross2d": ((256,), ("tfastro", "tfastro-chunked", "powerbox", "numpy")),
    "bispectrum": ((128,), ("tfastro", "tfastro-nocache", "numpy")),
    "cic": ((256,), ("tfastro", "numpy")),
    "precision": ((256, 512), ("tfastro",)),  # against float64: see float64_agreement
    "mas": ((128, 256), ("tfastro", "pylians")),  # alternating in one process: see mas_ratios
}
ONLY_UP_TO_256 = ("powerbox", "numpy")  # minutes and gigabytes at 512^3
REFERENCE = {("pk3d", 256): "Pylians 0.51 s, powerbox 1.9 s; target < 0.2 s",
             ("bispectrum", 128): "Pylians 0.65 s; target <= 0.65 s",
             ("cic", 256): "Pylians 0.74 s (10^7); target <= 0.74 s"}
BOX = {"pk3d": 1000.0, "precision": 1000.0, "cross2d": 25.0, "bispectrum": 500.0, "cic": 1000.0, "mas": 1000.0}
K1, K2, THETAS = 0.3, 0.4, np.linspace(0.0, np.pi, 25)


# ----------------------------------------------------------------- numpy baseline (Pylians)
@functools.lru_cache(maxsize=4)
def integer_k(n, d):
    """Broadcastable integer wavenumbers of each axis on the rfft layout, Nyquist as +n/2."""
    k = np.fft.fftfreq(n, 1.0 / n).astype(np.int64)
    k[n // 2] = n // 2
    return np.meshgrid(*([k] * (d - 1) + [np.arange(n // 2 + 1)]), indexing="ij", sparse=True)


@functools.lru_cache(maxsize=4)
def pylians_bins(n, d, box):
    """(flat bin index of each rfft mode, nbins for the modes not counted; Nmodes; mean k)."""
    axes = integer_k(n, d)
    kmag = np.sqrt(sum(a.astype(np.float64) ** 2 for a in axes))
    nbins = math.isqrt(d * (n // 2) ** 2)
    edge = [(a == 0) | (a == n // 2) for a in axes]
    twin = edge[-1] & ((axes[0] < 0) | ((d == 3) & edge[0] & (axes[1] < 0)))  # Hermitian twins
    index = np.floor(kmag).astype(np.intp) - 1
    index[(index < 0) | twin] = nbins
    index = index.ravel()
    counts = np.bincount(index, minlength=nbins + 1)[:nbins]
    k = np.bincount(index, kmag.ravel(), nbins + 1)[:nbins] / counts * 2 * np.pi / box
    return index, counts, k


def numpy_binned(mode_power, n, d, box):
    """P(k) from |delta_k|^2 (or Re delta_a delta_b^*) on the rfft layout."""
    index, counts, _ = pylians_bins(n, d, box)
    sums = np.bincount(index, mode_power.ravel(), len(counts) + 1)[:len(counts)]
    return sums / counts * box**d / float(n) ** (2 * d)


def numpy_cross_spectra(maps, box):
    """(B, C, C, nbins) spectra of (B, N, N, C) maps, map by map and pair by pair."""
    n_maps, n, _, channels = maps.shape
    out = np.empty((n_maps, channels, channels, len(pylians_bins(n, 2, box)[1])))
    for m in range(n_maps):
        modes = np.fft.rfft2(maps[m], axes=(0, 1))
        for i in range(channels):
            for j in range(i, channels):
                product = (modes[..., i] * modes[..., j].conj()).real
                out[m, i, j] = out[m, j, i] = numpy_binned(product, n, 2, box)
    return out


def numpy_bispectrum(field, box):
    """B over THETAS with Pylians' FFT shell estimator: every shell transformed back."""
    n = field.shape[0]
    k_f = 2 * np.pi / box
    kmag = np.sqrt(sum(a.astype(np.float64) ** 2 for a in integer_k(n, 3)))
    delta_k = np.fft.rfftn(field.astype(np.float64))

    def shell(k):
        inside = (kmag >= (k - k_f) / k_f) & (kmag < (k + k_f) / k_f)
        return (np.fft.irfftn(delta_k * inside, s=field.shape).ravel(),
                np.fft.irfftn(inside.astype(np.float64), s=field.shape).ravel())

    (d1, i1), (d2, i2) = shell(K1), shell(K2)
    d12, i12 = d1 * d2, i1 * i2
    k3 = np.sqrt((K2 * np.sin(THETAS)) ** 2 + (K2 * np.cos(THETAS) + K1) ** 2)
    b = []
    for k in k3:
        d3, i3 = shell(k)
        b.append(np.dot(d12, d3) / np.dot(i12, i3) * box**6 / float(n) ** 9)
    return np.array(b)


def numpy_cic(positions, n, box):
    """CIC with nodes at the cell corners (Pylians): one np.bincount per cell corner."""
    x = positions.astype(np.float64) * (n / box)
    node = np.floor(x)
    frac = x - node
    node = node.astype(np.intp) % n
    nodes = [(node[:, a], (node[:, a] + 1) % n) for a in range(3)]
    weights = [(1.0 - frac[:, a], frac[:, a]) for a in range(3)]
    grid = np.zeros(n**3)
    for cx in (0, 1):
        for cy in (0, 1):
            for cz in (0, 1):
                flat = (nodes[0][cx] * n + nodes[1][cy]) * n + nodes[2][cz]
                grid += np.bincount(flat, weights[0][cx] * weights[1][cy] * weights[2][cz],
                                    n**3)
    return grid.reshape(n, n, n)


# ----------------------------------------------------------------------------- inputs
def white_noise(n, seed=0):
    return np.random.default_rng(seed).standard_normal((n, n, n), dtype=np.float32)


def correlated_maps(n_maps, n, seed=1):
    """(n_maps, n, n, 3) float32 white-noise channels with correlations 0.6, 0.3, 0.5."""
    noise = np.random.default_rng(seed).standard_normal((n_maps, n, n, 3), dtype=np.float32)
    mixing = np.array([[1.0, 0.0, 0.0], [0.6, 0.8, 0.0], [0.3, 0.5, 0.81]], np.float32)
    return noise @ mixing.T


def quadratic_field(n, seed=2):
    """g + 0.3 (g^2 - 1) with g a unit-variance Gaussian field of P(k) ~ (1 + k^2)^-1."""
    k2 = sum(a.astype(np.float64) ** 2 for a in integer_k(n, 3))
    g = np.fft.irfftn(np.fft.rfftn(white_noise(n, seed)) / np.sqrt(1.0 + k2), s=(n, n, n))
    g /= g.std()
    return (g + 0.3 * (g * g - 1.0)).astype(np.float32)


def uniform_particles(count, box, seed=3):
    return np.random.default_rng(seed).random((count, 3), dtype=np.float32) * np.float32(box)


# ---------------------------------------------------------------- one case in this process
def powerbox_spectrum(field, box, field2=None):
    import powerbox
    n, d = field.shape[0], field.ndim
    edges = 2 * np.pi / box * (np.arange(1, math.isqrt(d * (n // 2) ** 2) + 2) - 1e-3)
    return powerbox.get_power(field, box, deltax2=field2, a=1.0, b=1.0, bins=edges,
                              vol_normalised_power=True, dimensionless=False,
                              nthreads=1).power


def case_call(case, impl, n, args):
    """(call, scale): a no-argument function computing the case, and the factor from its work
    to the whole case (cross2d baselines run on a subset of the maps)."""
    box = BOX[case]
    if case == "pk3d":
        field = white_noise(n)
        if impl == "tfastro":
            from tfastro.fields.spectra import power_spectrum
            return lambda: power_spectrum(field, box)[1], 1.0
        if impl == "powerbox":
            return lambda: powerbox_spectrum(field, box), 1.0
        if impl == "pylians":
            import Pk_library
            return lambda: Pk_library.Pk(field, box, axis=0, MAS="None", threads=args.threads,
                                         verbose=False).Pk[:, 0], 1.0
        return lambda: numpy_binned(np.abs(np.fft.rfftn(field)) ** 2, n, 3, box), 1.0
    if case == "cross2d":
        from tfastro.fields.spectra import cross_spectra
        if impl == "tfastro":
            maps = correlated_maps(args.maps, n)
            return lambda: cross_spectra(maps, box, channel_axis=-1, ndim=2)[1], 1.0
        if impl == "tfastro-chunked":
            maps = correlated_maps(args.maps, n)
            return lambda: np.concatenate([cross_spectra(maps[i:i + args.chunk], box)[1]
                                           for i in range(0, len(maps), args.chunk)]), 1.0
        maps = correlated_maps(args.subset, n)
        scale = args.maps / args.subset
        if impl == "numpy":
            return lambda: numpy_cross_spectra(maps, box), scale

        def powerbox_all():
            out = np.empty((len(maps), 3, 3, math.isqrt(2 * (n // 2) ** 2)))
            for m, fields in enumerate(maps):
                for i in range(3):
                    for j in range(i, 3):
                        out[m, i, j] = out[m, j, i] = powerbox_spectrum(
                            fields[..., i], box, None if i == j else fields[..., j])
            return out
        return powerbox_all, scale
    if case == "bispectrum":
        field = quadratic_field(n)
        if impl == "tfastro":
            from tfastro.fields.bispectra import bispectrum
            return lambda: bispectrum(field, box, K1, K2, THETAS).B, 1.0
        if impl == "tfastro-nocache":
            from tfastro.fields import bispectra as module

            def uncached():
                module._closed_triangles.cache_clear()  # private: the triangle-count cache
                return module.bispectrum(field, box, K1, K2, THETAS).B
            return uncached, 1.0
        return lambda: numpy_bispectrum(field, box), 1.0
    if case == "cic":
        positions = uniform_particles(args.particles, box)
        if impl == "tfastro":
            from tfastro.fields.assignment import mass_assignment
            return lambda: mass_assignment(positions, n, box, "CIC"), 1.0
        return lambda: numpy_cic(positions, n, box), 1.0
    raise ValueError(f"case={case!r}: expected one of {', '.join(CASES)}")


def pylians_installed():
    try:
        import MAS_library  # noqa: F401
        import Pk_library  # noqa: F401
    except ImportError:
        return False
    return True


def mas_ratios(ndim, particles, n, args):
    """Seconds of tfastro and Pylians mass assignment of every scheme, calls alternating in
    this process, the minimum of --repeats + 1 each (both grids freshly allocated)."""
    from tfastro.fields.assignment import mass_assignment
    positions = uniform_particles(particles, BOX["mas"])[:, :ndim].copy()
    rows = []
    for scheme in ("NGP", "CIC", "TSC", "PCS"):
        calls = {"tfastro": lambda: mass_assignment(positions, n, BOX["mas"], scheme)}
        if args.pylians:
            import MAS_library

            def pylians():
                grid = np.zeros((n,) * ndim, np.float32)
                MAS_library.MA(positions, grid, BOX["mas"], scheme, verbose=False)
                return grid
            calls["pylians"] = pylians
        seconds = {impl: [] for impl in calls}
        for impl, call in calls.items():
            call()  # compiles, fills caches
        for _ in range(args.repeats + 1):
            for impl, call in calls.items():
                began = time.perf_counter()
                call()
                seconds[impl].append(time.perf_counter() - began)
        rows.append({"scheme": scheme, **{impl: min(t) for impl, t in seconds.items()}})
    return rows


def float64_agreement(n):
    """max over bins of |P_tfastro / P_float64 - 1| for white noise on n^3 cells."""
    from tfastro.fields.spectra import power_spectrum
    field = white_noise(n)
    pk = power_spectrum(field, BOX["precision"])[1]
    modes = np.fft.rfftn(field.astype(np.float64))
    reference = numpy_binned(modes.real**2 + modes.imag**2, n, 3, BOX["precision"])
    return {"max_rel": float(np.max(np.abs(pk / reference - 1.0)))}


def memory_mb(field):
    """A VmRSS / VmHWM line of /proc/self/status in MB."""
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith(field + ":"))
    return int(line.split()[1]) / 1024


def run_case(case, impl, n, args):
    """Time one implementation of one case; its output goes to ``args.out`` for comparison."""
    if case == "precision":
        return float64_agreement(n)
    if case == "mas":  # ndim x particles
        ndim, particles = impl.split("x")
        return mas_ratios(int(ndim), int(particles), n, args)
    call, scale = case_call(case, impl, n, args)
    before = memory_mb("VmRSS")
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")  # resets VmHWM to the current resident memory
    began = time.perf_counter()
    result = call()
    first = time.perf_counter() - began
    times = []
    for _ in range(args.repeats):
        began = time.perf_counter()
        call()
        times.append(time.perf_counter() - began)
    peak = memory_mb("VmHWM")
    np.save(args.out, np.asarray(result))
    return {"first_s": first * scale, "median_s": float(np.median(times)) * scale,
            "scaled": scale != 1.0, "extra_mb": peak - before, "peak_mb": peak}


# ---------------------------------------------------------------------------------- driver
def agreement(outputs):
    """max|x - x_numpy| / max|x_numpy| of each implementation's output, as text."""
    if "numpy" not in outputs:
        return ""
    base = outputs["numpy"]
    parts = []
    for impl, value in outputs.items():
        if impl != "numpy":
            value = value[:len(base)]  # cross2d: the baselines' subset of maps
            parts.append(f"{impl} {np.max(np.abs(value - base)) / np.max(np.abs(base)):.1e}")
    return f"  vs numpy: {', '.join(parts)}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated subset of "
                        + ", ".join(CASES))
    parser.add_argument("--repeats", type=int, default=3, help="timed calls after the first")
    parser.add_argument("--maps", type=int, default=1000, help="cross2d: number of maps")
    parser.add_argument("--chunk", type=int, default=100,
                        help="cross2d: maps per cross_spectra call in tfastro-chunked")
    parser.add_argument("--subset", type=int, default=50,
                        help="cross2d: maps the numpy and powerbox baselines run on")
    parser.add_argument("--particles", type=int, default=10**7, help="cic: particles")
    parser.add_argument("--threads", type=int, default=2, help="Pylians Pk threads")
    parser.add_argument("--pylians", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--run", help=argparse.SUPPRESS)  # case:impl:n, in a worker process
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        case, impl, n = args.run.split(":")
        print(json.dumps(run_case(case, impl, int(n), args)))
        return
    cases = args.cases.split(",")
    unknown = sorted(set(cases) - set(CASES))
    if unknown:
        parser.error(f"--cases: unknown {', '.join(unknown)}; expected some of {', '.join(CASES)}")
    args.pylians = pylians_installed()
    load = os.getloadavg()[0]
    print(f"{os.cpu_count()} cores, load average {load:.2f} at start; repeats {args.repeats}; "
          f"Pylians {'installed' if args.pylians else 'not installed: its columns are left out'}")
    print(f"{'case':>10} {'N':>4} {'impl':>15} {'first s':>8} {'median s':>9} {'extra MB':>9} "
          f"{'peak MB':>8}")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    with tempfile.TemporaryDirectory() as tmp:
        for case in cases:
            if case == "mas":
                run_mas(args, env, tmp)
                continue
            if case == "precision":
                for n in CASES[case][0]:
                    r = worker(args, env, tmp, case, "tfastro", n)
                    if r is not None:
                        print(f"{case:>10} {n:>4} {'tfastro':>15}  max |P / P_float64 - 1| "
                              f"over the bins: {r['max_rel']:.1e}", flush=True)
                continue
            sizes, impls = CASES[case]
            for n in sizes:
                outputs, results = {}, {}
                for impl in impls:
                    if (impl == "pylians" and not args.pylians) \
                            or (impl in ONLY_UP_TO_256 and n > 256):
                        continue
                    r = worker(args, env, tmp, case, impl, n)
                    if r is None:
                        continue
                    results[impl] = r
                    outputs[impl] = np.load(os.path.join(tmp, f"{case}-{impl}-{n}.npy"))
                    note = f"  (first {args.subset} maps, x{args.maps / args.subset:g})" \
                        if r["scaled"] else ""
                    print(f"{case:>10} {n:>4} {impl:>15} {r['first_s']:8.3f} {r['median_s']:9.3f} "
                          f"{r['extra_mb']:9.0f} {r['peak_mb']:8.0f}{note}", flush=True)
                reference = REFERENCE.get((case, n))
                print(f"{'':>22}{agreement(outputs)}{ratios(results)}"
                      + (f"; reference: {reference}" if reference else ""), flush=True)
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


def worker(args, env, tmp, case, impl, n):
    """Run one case in a fresh process; its result dict, or None (printed) when it failed."""
    out = os.path.join(tmp, f"{case}-{impl}-{n}.npy")
    command = [sys.executable, __file__, "--run", f"{case}:{impl}:{n}", "--out", out,
               "--repeats", str(args.repeats), "--maps", str(args.maps),
               "--chunk", str(args.chunk), "--subset", str(args.subset),
               "--particles", str(args.particles), "--threads", str(args.threads)]
    proc = subprocess.run(command + (["--pylians"] if args.pylians else []),
                          capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        print(f"{case:>10} {n:>4} {impl:>15} failed: {proc.stderr.strip().splitlines()[-1:]}",
              flush=True)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def ratios(results):
    """tfastro / Pylians and tfastro / powerbox of median seconds and extra memory, as text."""
    if "tfastro" not in results:
        return ""
    ours = results["tfastro"]
    parts = [f"tfastro/{impl}: time {ours['median_s'] / r['median_s']:.2f}x (first "
             f"{ours['first_s'] / r['first_s']:.2f}x), extra memory "
             f"{ours['extra_mb'] / max(r['extra_mb'], 1.0):.2f}x"
             for impl, r in results.items() if impl in ("pylians", "powerbox")]
    return "".join(f"\n{'':>22}  {part}" for part in parts)


def run_mas(args, env, tmp):
    """The mas case: one process per (ndim, particles, N), tfastro and Pylians alternating."""
    print(f"\n{'mas':>10} {'N':>4} {'d':>2} {'particles':>9} {'scheme':>6} {'tfastro s':>10} "
          f"{'Pylians s':>10} {'ratio':>6}")
    for ndim in (2, 3):
        for particles in (10**6, 10**7):
            for n in CASES["mas"][0]:
                rows = worker(args, env, tmp, "mas", f"{ndim}x{particles}", n)
                for row in rows or []:
                    pylians = row.get("pylians", float("nan"))
                    print(f"{'mas':>10} {n:>4} {ndim:>2} {particles:>9.0e} {row['scheme']:>6} "
                          f"{row['tfastro']:10.3f} {pylians:10.3f} "
                          f"{row['tfastro'] / pylians:6.2f}", flush=True)


if __name__ == "__main__":
    main()
