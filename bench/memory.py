"""Peak resident memory of this process, for the benchmarks' figures."""
import resource


def peak_rss_gb():
    """Peak resident set size so far in GB (10^9 bytes); Linux reports it in KiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9
