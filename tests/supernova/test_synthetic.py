"""Synthetic supernova shells: format, reproducibility, and the physics measured from frames."""
import os
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

from tfastro.core.errors import UserInputError
from tfastro.fields.random_fields import lognormal_field
from tfastro.supernova.evaluation import shell_mask, shell_radius, swept_shell_mask
from tfastro.supernova.synthetic import sedov_taylor_radius
from tfastro.supernova.io import default_clips, load_sn_npz
from tfastro.supernova.synthetic import (KYR_S, PC_CM, SNParams, blast_density, lognormal_cloud,
                                         main, make_sn_clips)

PARAMS = SNParams()
SIZE, LENGTH = 32, 20


@pytest.fixture(scope="module")
def uniform_clip():
    frames, _ = make_sn_clips(1, LENGTH, SIZE, medium="uniform")
    return frames[:, 0]


@pytest.fixture(scope="module")
def turbulent_clips():
    frames, clips = make_sn_clips(3, LENGTH, SIZE, medium="turbulent", seed=11)
    return frames, clips


def _measured_radii(clip):
    """Shell radius (voxels) of frames 1.. from the mask 'density > 1.1 x frame 0'."""
    return np.array([shell_radius(swept_shell_mask(frame, clip[0])) for frame in clip[1:]])


def test_format_range_and_clips(turbulent_clips):
    frames, clips = turbulent_clips
    assert frames.shape == (3 * LENGTH, 1, SIZE, SIZE, SIZE)
    assert frames.dtype == np.float32
    assert np.isfinite(frames).all()
    assert frames.min() > 0.0 and frames.max() == 1.0
    np.testing.assert_array_equal(clips, default_clips(3 * LENGTH, LENGTH))
    # Each clip is its own cloud; frame 0 is the pre-explosion density (no shell).
    assert not np.allclose(frames[0], frames[LENGTH])
    for i in range(3):
        clip = frames[i * LENGTH:(i + 1) * LENGTH, 0]
        assert shell_mask(clip[0], clip[0]).sum() == 0
        assert all(shell_mask(f, clip[0]).sum() > 50 for f in clip[1:])


def test_seed_reproducibility():
    a, _ = make_sn_clips(2, 3, 12, seed=4)
    b, _ = make_sn_clips(2, 3, 12, seed=4)
    c, _ = make_sn_clips(2, 3, 12, seed=5)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_lognormal_cloud_statistics():
    rho = lognormal_cloud(32, seed=0, sigma=0.8)
    assert rho.shape == (32, 32, 32) and (rho > 0).all()
    np.testing.assert_allclose(rho.mean(), 1.0, rtol=1e-12)
    np.testing.assert_allclose(np.log(rho).std(), 0.8, rtol=1e-6)
    # The log-density field has the requested spectrum: fit P(k) ∝ k^slope over shells.
    g = np.log(rho)
    power = np.abs(np.fft.fftn(g - g.mean())) ** 2
    f = np.fft.fftfreq(32, 1 / 32)
    k = np.sqrt(f[:, None, None] ** 2 + f[None, :, None] ** 2 + f[None, None, :] ** 2)
    shell = np.rint(k).astype(int)
    mean_k = np.array([k[shell == i].mean() for i in range(1, 15)])
    mean_p = np.array([power[shell == i].mean() for i in range(1, 15)])
    slope = np.polyfit(np.log(mean_k), np.log(mean_p), 1)[0]
    assert abs(slope - (-2.0)) < 0.15, slope
    np.testing.assert_array_equal(rho, lognormal_cloud(32, seed=0, sigma=0.8))


def test_mass_roughly_conserved(uniform_clip, turbulent_clips):
    frames = turbulent_clips[0][:LENGTH, 0]
    for clip in (uniform_clip, frames):
        mass = clip.sum(axis=(1, 2, 3), dtype=np.float64)
        np.testing.assert_allclose(mass / mass[0], 1.0, atol=0.02)


def test_uniform_shell_follows_sedov_taylor(uniform_clip):
    t_kyr = PARAMS.frame_times_kyr(LENGTH)[1:]
    radii = _measured_radii(uniform_clip)
    # Grows from a few voxels to ~40 per cent of the box over the clip.
    assert 3 < radii[0] < 6 and 0.35 * SIZE < radii[-1] < 0.45 * SIZE
    slope = np.polyfit(np.log(t_kyr), np.log(radii), 1)[0]
    assert abs(slope - 0.4) < 0.02, slope
    # Against the analytic law in physical units: E = 1e51 erg into n0 = 44.5 cm^-3.
    voxel_cm = PARAMS.box_pc / SIZE * PC_CM
    rho0 = 44.5 * 1.4 * 1.6726e-24
    expected = sedov_taylor_radius(t_kyr * KYR_S, 1e51, rho0) / voxel_cm
    np.testing.assert_allclose(radii, expected, rtol=0.05)
    # Spherical: the same radius in every octant.
    late = swept_shell_mask(uniform_clip[-1], uniform_clip[0])
    octant_radii = _octant_radii(late)
    assert octant_radii.std() / octant_radii.mean() < 0.01


def _sector_labels(size, n_sectors=26):
    """Label each voxel with the nearest of the 26 lattice directions from the centre."""
    d = np.indices((size,) * 3) - (size - 1) / 2.0
    dirs = np.array([(i, j, k) for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)
                     if (i, j, k) != (0, 0, 0)], dtype=float)
    dirs /= np.linalg.norm(dirs, axis=1)[:, None]
    assert len(dirs) == n_sectors
    return np.argmax(np.einsum("dk,k...->d...", dirs, d), axis=0)


def _octant_radii(mask):
    return np.array([shell_radius(mask & _octant(mask.shape, o)) for o in range(8)])


def _octant(shape, o):
    sel = np.zeros(shape, dtype=bool)
    h = shape[0] // 2
    sx, sy, sz = (slice(0, h) if (o >> b) & 1 else slice(h, None) for b in range(3))
    sel[sx, sy, sz] = True
    return sel


def test_turbulent_shell_is_anisotropic_and_lags_in_dense_directions(turbulent_clips):
    frames, _ = turbulent_clips
    sectors = _sector_labels(SIZE)
    r = np.linalg.norm(np.indices((SIZE,) * 3) - (SIZE - 1) / 2.0, axis=0)
    for i in range(3):
        clip = frames[i * LENGTH:(i + 1) * LENGTH, 0]
        mask = swept_shell_mask(clip[12], clip[0])
        radius = np.array([shell_radius(mask & (sectors == s)) for s in range(26)])
        # Mean pre-explosion density inside each sector's shell.
        density = np.array([clip[0][(sectors == s) & (r < radius[s])].mean()
                            for s in range(26)])
        assert radius.std() / radius.mean() > 0.02
        assert stats.spearmanr(radius, density)[0] < -0.6
    # The radius still grows as a power of time close to t^(2/5) on average.
    t_kyr = PARAMS.frame_times_kyr(LENGTH)[1:]
    slope = np.polyfit(np.log(t_kyr), np.log(_measured_radii(frames[:LENGTH, 0])), 1)[0]
    assert 0.34 < slope < 0.46


def test_blast_density_rejects_bad_input():
    with pytest.raises(UserInputError, match="cube"):
        blast_density(np.ones((4, 4, 5)), [1.0])
    with pytest.raises(UserInputError, match="times"):
        blast_density(np.ones((4, 4, 4)), [-1.0])
    np.testing.assert_array_equal(blast_density(np.full((4, 4, 4), 2.0), [0.0])[0], 2.0)
    with pytest.raises(UserInputError, match="medium"):
        make_sn_clips(1, 4, 8, medium="vacuum")
    with pytest.raises(UserInputError, match="clip_length"):
        make_sn_clips(1, 1, 8)


def test_cli_writes_a_loadable_file_and_refuses_overwrite(tmp_path, capsys):
    out = tmp_path / "sn" / "synthetic.npz"
    argv = ["--out", str(out), "--frames", "8", "--clip-length", "4", "--size", "8",
            "--seed", "2", "--medium", "uniform"]
    assert main(argv) == 0
    assert "SYNTHETIC" in capsys.readouterr().out
    data = load_sn_npz(str(out))
    assert data.frames.shape == (8, 1, 8, 8, 8)
    np.testing.assert_array_equal(data.clips, default_clips(8, 4))
    before = out.read_bytes()

    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "synthetic.npz" in err and "--overwrite" in err and "Traceback" not in err
    assert out.read_bytes() == before
    assert main(argv[:-2] + ["--overwrite"]) == 0
    assert out.read_bytes() != before

    assert main(["--out", str(tmp_path / "x.npz"), "--frames", "10",
                 "--clip-length", "4"]) == 2
    assert "--frames=10" in capsys.readouterr().err
    assert not (tmp_path / "x.npz").exists()


def test_cli_default_file_via_python_m(tmp_path):
    out = tmp_path / "SampleData.npz"
    cmd = [sys.executable, "-m", "tfastro.synthetic", "supernova", "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr
    assert "SYNTHETIC" in done.stdout
    data = load_sn_npz(str(out))
    assert data.frames.shape == (240, 1, 32, 32, 32)
    i = np.arange(12)
    np.testing.assert_array_equal(data.clips[0], np.stack([20 * i, np.full(12, 10)], 1))
    np.testing.assert_array_equal(data.clips[1], np.stack([20 * i + 10, np.full(12, 10)], 1))
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    assert again.returncode == 2
    assert "overwrite" in again.stderr and "Traceback" not in again.stderr


def test_clouds_are_the_lognormal_fields_of_tfastro_fields():
    """The SN clouds come from tfastro.fields' generator: same seed, same cube."""
    np.testing.assert_allclose(lognormal_cloud(16, seed=3, slope=-2.0, sigma=0.5),
                               lognormal_field((16,) * 3, 2 * np.pi, lambda k: k**-2.0, 3,
                                               sigma=0.5), rtol=1e-12)
