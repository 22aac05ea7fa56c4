"""Resident host memory of TensorFlow's CPU tensors.

TensorFlow's oneDNN CPU allocator keeps freed tensors in a pool of its own (a BFC
allocator), so a process's resident memory stays at the pool's high-water mark, its
fragmentation included. :func:`return_freed_tensors_to_os` hands tensors to the C library
instead and has glibc map every block of ``MMAP_THRESHOLD`` bytes or more on its own, so
that freeing a tensor gives its pages back: resident memory then follows the tensors alive.
For 3D-MIM at 32^3 (run.sh, with rematerialisation) the peak fell from 4.29 to about
4.0 x 10^9 B (README.md, Performance); each large tensor then costs fresh pages, so it is
meant for runs limited by memory, not for small fast ones.
"""
import ctypes
import ctypes.util
import os

MMAP_THRESHOLD = 256 * 1024  # bytes


_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number


def return_freed_tensors_to_os():
    """Let freed CPU tensors return their memory to the operating system (see module doc).

    Call before TensorFlow allocates its first tensor: the allocator is chosen then, and a
    later call changes nothing for it. A value of TF_ONEDNN_USE_SYSTEM_ALLOCATOR already in
    the environment is kept. Returns True when glibc's mmap threshold was set (False on a
    C library without ``mallopt``, where only the allocator choice applies).
    """
    os.environ.setdefault("TF_ONEDNN_USE_SYSTEM_ALLOCATOR", "1")
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c")).mallopt
    except (OSError, AttributeError):
        return False
    return mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
