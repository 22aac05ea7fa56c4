"""Folding p x p x p blocks of voxels into channels (3D-MIM's ``reshape_patch``) and back."""
from keras import ops


def reshape_patch(frames, patch_size):
    """(B, T, X, Y, Z, C) -> (B, T, X/p, Y/p, Z/p, p^3 C); block offsets (x, y, z) before C."""
    p = int(patch_size)
    if p == 1:
        return frames
    b, t, x, y, z, c = ops.shape(frames)
    if x % p or y % p or z % p:
        raise ValueError(f"grid {(x, y, z)} is not divisible by patch_size {p}")
    a = ops.reshape(frames, (b, t, x // p, p, y // p, p, z // p, p, c))
    a = ops.transpose(a, (0, 1, 2, 4, 6, 3, 5, 7, 8))
    return ops.reshape(a, (b, t, x // p, y // p, z // p, p * p * p * c))


def reshape_patch_back(patches, patch_size):
    """Exact inverse of :func:`reshape_patch`: (B, T, X/p, Y/p, Z/p, p^3 C) -> (B, T, X, Y, Z, C)."""
    p = int(patch_size)
    if p == 1:
        return patches
    b, t, xp, yp, zp, cp = ops.shape(patches)
    c = cp // (p * p * p)
    a = ops.reshape(patches, (b, t, xp, yp, zp, p, p, p, c))
    a = ops.transpose(a, (0, 1, 2, 5, 3, 6, 4, 7, 8))
    return ops.reshape(a, (b, t, xp * p, yp * p, zp * p, c))
