"""dm2gal samples: candidate centres and regions against brute force, mass-bin weighted
sampling (chi-square) and the streamed window pipeline of rotated windows."""
import itertools

import numpy as np
import pytest
from scipy import stats

from tfastro.core.errors import UserInputError
from tfastro.core.symmetries import CUBE_ROTATIONS, transform
from tfastro.dm2gal.pipeline import (DM2GalRegions, candidate_centres, centre_allowed,
                                     mass_bin_weights, split_centres, split_regions,
                                     weighted_index_dataset, weighted_sample_indices,
                                     window_dataset)


def _mass_grid(n=32, seed=0):
    """Lognormal 'stellar mass' per voxel, ~10 % of voxels above 1e8 Msun/h."""
    return 10.0 ** np.random.default_rng(seed).normal(7.0, 0.8, (n, n, n))


# ---------------------------------------------------------------- candidate centres

def test_candidate_centres_match_brute_force(tmp_path):
    n, low, high = 32, 5, 7
    mass = _mass_grid(n)
    np.save(tmp_path / "mass.npy", mass.astype(np.float32))
    mapped = np.load(tmp_path / "mass.npy", mmap_mode="r")
    expected = [(x, y, z) for x, y, z in itertools.product(range(n), repeat=3)
                if mapped[x, y, z] > 1e8 and all(low <= c < n - high for c in (x, y, z))]
    got = candidate_centres(mapped, 1e8, low, high, slab=3)
    assert got.dtype == np.int64 and len(expected) > 100
    np.testing.assert_array_equal(got, np.array(expected))

    box = [c for c in expected if all(10 <= v < 20 for v in c)]
    np.testing.assert_array_equal(candidate_centres(mapped, 1e8, low, high, region=(10, 20)),
                                  np.array(box))
    mask = np.zeros((n,) * 3, bool)
    mask[::2] = True
    np.testing.assert_array_equal(candidate_centres(mapped, 1e8, low, high, region=mask),
                                  np.array([c for c in expected if c[0] % 2 == 0]))


def test_candidate_centres_reject_non_cubic_grid():
    with pytest.raises(ValueError, match="target_mass"):
        candidate_centres(np.zeros((8, 8, 9)))


# ---------------------------------------------------------------- regions and buffer

@pytest.mark.parametrize("n,test,validation,window",
                         [(32, (4, 12), (18, 26), 7), (96, (8, 40), (56, 88), 17)])
def test_training_windows_never_see_held_out_voxels(n, test, validation, window):
    """Brute force over every voxel: a training window is disjoint from test ∪ validation,
    and every window inside the grid that misses both boxes is allowed (the buffer is tight)."""
    regions = split_regions(n, test, validation, window)
    held_out = np.zeros((n,) * 3, bool)
    for lo, hi in (test, validation):
        held_out[lo:hi, lo:hi, lo:hi] = True
    half = window // 2
    centres = np.array(list(itertools.product(range(half, n - half), repeat=3)))
    allowed = centre_allowed(centres, regions, "train")
    sees = np.array([held_out[x - half:x + half + 1, y - half:y + half + 1,
                              z - half:z + half + 1].any() for x, y, z in centres])
    np.testing.assert_array_equal(allowed, ~sees)
    assert 0 < allowed.sum() < len(centres)

    for split, (lo, hi) in (("test", test), ("validation", validation)):
        inside = np.all((centres >= lo) & (centres < hi), axis=1)
        np.testing.assert_array_equal(centre_allowed(centres, regions, split), inside)
    parts = split_centres(centres, regions)
    assert sum(len(p) for p in parts.values()) < len(centres)  # the buffer belongs to none
    assert not set(map(tuple, parts["train"])) & set(map(tuple, parts["test"]))


def test_windows_leaving_the_grid_are_never_allowed():
    regions = split_regions(32, (4, 12), (18, 26), 7)
    edge = np.array([[2, 28, 28], [29, 28, 28], [5, 5, 5], [22, 22, 22]])
    assert not centre_allowed(edge[:2], regions, "train").any()
    np.testing.assert_array_equal(centre_allowed(edge, regions, "test"), [0, 0, 1, 0])
    np.testing.assert_array_equal(centre_allowed(edge, regions, "validation"), [0, 0, 0, 1])


def test_default_regions_are_the_original_boxes():
    regions = split_regions()
    assert regions == DM2GalRegions(2048, (64, 933), (1000, 1801), 65)
    assert regions.test[1] - regions.test[0] == 869  # 31.82 h^-1 Mpc
    # a training centre needs 32 voxels between its window's centre and the test box
    assert centre_allowed([[933 + 31, 500, 500], [933 + 32, 500, 500]], regions,
                          "train").tolist() == [False, True]


@pytest.mark.parametrize("kwargs,match", [
    (dict(test=(10, 40), validation=(30, 50)), "overlap"),
    (dict(test=(10, 40), validation=(50, 97)), "leaves"),
    (dict(window=8), "odd"),
    (dict(test=(20, 10)), "lo < hi")])
def test_split_regions_reject_bad_boxes(kwargs, match):
    args = dict(grid_size=96, test=(8, 40), validation=(56, 88), window=17) | kwargs
    with pytest.raises(UserInputError, match=match):
        split_regions(**args)


# ---------------------------------------------------------------- weighted sampling

def _skewed_targets(m=4000, seed=1):
    """Standardised log masses with a steep, one-sided distribution (most samples low)."""
    return np.random.default_rng(seed).exponential(1.0, m)


def _uniformity_pvalue(targets, drawn, bins=100):
    edges = np.linspace(targets.min(), targets.max(), bins + 1)
    occupied = np.histogram(targets, edges)[0] > 0
    counts = np.histogram(targets[drawn], edges)[0][occupied]
    return stats.chisquare(counts).pvalue, occupied.sum()


def test_mass_bin_weights_give_each_occupied_bin_weight_one():
    targets = _skewed_targets()
    weights = mass_bin_weights(targets)
    edges = np.linspace(targets.min(), targets.max(), 101)
    which = np.clip(np.digitize(targets, edges) - 1, 0, 99)
    totals = np.bincount(which, weights, minlength=100)
    occupied = np.bincount(which, minlength=100) > 0
    np.testing.assert_allclose(totals[occupied], 1.0)
    np.testing.assert_allclose(mass_bin_weights(np.full(5, 2.0)), 0.2)


def test_weighted_draws_are_uniform_over_occupied_bins():
    targets = _skewed_targets()
    weights = mass_bin_weights(targets)
    p_weighted, occupied = _uniformity_pvalue(targets, weighted_sample_indices(weights, 20000, 0))
    p_plain, _ = _uniformity_pvalue(targets, np.random.default_rng(0).integers(0, targets.size,
                                                                               20000))
    assert occupied > 40
    assert p_weighted > 1e-3, p_weighted
    assert p_plain < 1e-10, p_plain  # control: the test can fail

    stream = weighted_index_dataset(weights, seed=3, num_samples=20000)
    drawn = np.fromiter(stream.as_numpy_iterator(), np.int64)
    assert drawn.size == 20000
    p_stream, _ = _uniformity_pvalue(targets, drawn)
    assert p_stream > 1e-3, p_stream
    again = np.fromiter(weighted_index_dataset(weights, seed=3, num_samples=500)
                        .as_numpy_iterator(), np.int64)
    np.testing.assert_array_equal(again, drawn[:500])


def test_zero_weights_are_never_drawn():
    weights = np.zeros(50)
    weights[[3, 17]] = 1.0
    assert set(weighted_sample_indices(weights, 200, 1)) == {3, 17}
    stream = weighted_index_dataset(weights, seed=1, num_samples=300)
    assert set(stream.as_numpy_iterator()) == {3, 17}
    with pytest.raises(ValueError, match="weights"):
        weighted_sample_indices([1.0, -1.0], 3)


# ---------------------------------------------------------------- window pipeline

N, W = 24, 9


@pytest.fixture
def grids(tmp_path, rng):
    """Memory-mapped random inputs (N, N, N, 2) and a target whose value names its voxel."""
    inputs = rng.normal(size=(N, N, N, 2)).astype(np.float32)
    target = (np.arange(N ** 3, dtype=np.float32) / 1000.0).reshape(N, N, N)
    np.save(tmp_path / "inputs.npy", inputs)
    np.save(tmp_path / "target.npy", target)
    return (np.load(tmp_path / "inputs.npy", mmap_mode="r"),
            np.load(tmp_path / "target.npy", mmap_mode="r"))


def _centre_of(value):
    return np.unravel_index(int(round(float(value) * 1000)), (N, N, N))


def _direct_window(inputs, centre):
    x, y, z = centre
    h = W // 2
    return np.asarray(inputs[x - h:x + h + 1, y - h:y + h + 1, z - h:z + h + 1])


def _centres(count=20, seed=5):
    return np.random.default_rng(seed).integers(W // 2, N - W // 2, (count, 3))


def test_windows_are_direct_slices_without_augmentation(grids):
    inputs, target = grids
    centres = _centres()
    ds = window_dataset(inputs, target, centres, W, batch_size=8, augment=False,
                        shuffle=False, repeat=False)
    batches = list(ds.as_numpy_iterator())
    assert [len(b[0]) for b in batches] == [8, 8, 4]
    windows = np.concatenate([b[0] for b in batches])
    values = np.concatenate([b[1] for b in batches])
    assert windows.dtype == np.float32 and values.dtype == np.float32
    assert windows.shape == (20, W, W, W, 2) and values.shape == (20, 1)
    np.testing.assert_array_equal(values[:, 0], target[tuple(centres.T)])
    for window, centre in zip(windows, centres):
        np.testing.assert_array_equal(window, _direct_window(inputs, centre))


def test_augmented_weighted_windows_are_rotated_slices_at_drawn_centres(grids):
    inputs, target = grids
    centres = _centres()
    weights = np.zeros(len(centres))
    weights[[2, 7, 11]] = [1.0, 2.0, 1.0]
    ds = window_dataset(inputs, target, centres, W, batch_size=6, weights=weights, seed=4)
    rotations, seen = set(), set()
    for windows, values in ds.take(8).as_numpy_iterator():
        assert windows.shape == (6, W, W, W, 2) and values.shape == (6, 1)
        for window, value in zip(windows, values[:, 0]):
            centre = _centre_of(value)
            seen.add(tuple(int(c) for c in centre))
            direct = _direct_window(inputs, centre)
            matches = [k for k, r in enumerate(CUBE_ROTATIONS)
                       if np.array_equal(window, transform(direct, r, (0, 1, 2)))]
            assert len(matches) == 1
            rotations.add(matches[0])
    assert seen == {tuple(centres[i]) for i in (2, 7, 11)}
    assert len(rotations) > 12  # 48 draws over 24 rotations


def test_shuffled_epochs_visit_every_centre_once(grids):
    inputs, target = grids
    centres = _centres(13)
    ds = window_dataset(inputs, target, centres, W, batch_size=5, augment=False, seed=2)
    values = np.concatenate([v[:, 0] for _, v in ds.take(13).as_numpy_iterator()])
    epochs = values.reshape(5, 13)  # 65 samples = 5 epochs of 13
    for epoch in epochs:
        np.testing.assert_array_equal(np.sort(epoch), np.sort(target[tuple(centres.T)]))
    assert not np.array_equal(epochs[0], epochs[1])


@pytest.mark.parametrize("weighted", [False, True])
def test_a_stream_started_at_a_sample_is_the_rest_of_the_stream_from_zero(grids, weighted):
    """What a resumed dm2gal run relies on: the samples from sample 17 on (past a shuffled
    epoch of 13; past two chunks of 8 weighted draws), rotations included, are those of the
    stream from 0."""
    inputs, target = grids
    centres = _centres(13)
    weights = np.arange(1.0, 14.0) if weighted else None

    def samples(first, count):
        ds = window_dataset(inputs, target, centres, W, batch_size=1, weights=weights, seed=6,
                            first_sample=first)
        return list(ds.take(count).as_numpy_iterator())

    whole, rest = samples(0, 30), samples(17, 13)
    for (a, u), (b, v) in zip(whole[17:], rest, strict=True):
        np.testing.assert_array_equal(b, a)
        np.testing.assert_array_equal(v, u)
    if weighted:
        def draws(first):
            return list(weighted_index_dataset(weights, seed=6, num_samples=30, chunk=8,
                                               first_sample=first).as_numpy_iterator())
        assert draws(17) == draws(0)[17:]
    with pytest.raises(ValueError, match="first_sample=-1"):
        window_dataset(inputs, target, centres, W, first_sample=-1)


def test_window_leaving_the_grid_is_named(grids):
    inputs, target = grids
    centres = np.array([[10, 10, 10], [3, 12, 12]])
    with pytest.raises(ValueError, match=r"centres\[1\] = \[3, 12, 12\]"):
        window_dataset(inputs, target, centres, W)
