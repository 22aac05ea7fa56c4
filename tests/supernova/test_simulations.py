"""Grid-code series -> clips: a Sedov-like blast written as Athena++ outputs (shuffled files,
mixed meshblock layouts, prim/cons, float32/64) placed across the periodic boundary; frames,
times, the centre, crops and resampling against the planted density."""
import numpy as np
import pytest

from tfastro.core.athena import write_athdf
from tfastro.core.errors import UserInputError
from tfastro.supernova.io import load_sn_npz
from tfastro.supernova.simulations import detect_centre, main, simulation_clips

N = 24
CENTRE = np.array([1.3, 22.6, 12.0])  # cells (x, y, z): across the x = 0 and y = N faces
BOX = ((0.0, 2.4), (-1.2, 1.2), (0.0, 4.8))  # x1, x2, x3: cells of 0.1, 0.1, 0.2
TIMES = np.array([1.0, 1.5, 2.0, 2.5, 3.0, 3.5])
LAYOUTS = [("prim", "rho", (8, 8, 8), np.float64), ("cons", "dens", (12, 24, 6), np.float32),
           ("prim", "rho", (24, 24, 24), np.float32), ("cons", "dens", (4, 8, 12), np.float64)]


def blast(t, cells=None):
    """rho [x, y, z] at integer cells: an evacuated interior and a shell at R = 2.5 t^(2/5)
    cells around CENTRE, periodic distances; ``cells``: (x, y, z) index arrays (default all)."""
    x, y, z = np.meshgrid(*[np.arange(N)] * 3, indexing="ij") if cells is None else cells
    d = [np.minimum(np.abs(a - c) % N, N - np.abs(a - c) % N) for a, c in zip((x, y, z), CENTRE)]
    r = np.sqrt(sum(v**2 for v in d))
    radius = 2.5 * t**0.4
    return 1.0 + 4.0 * np.exp(-(r - radius) ** 2) - 0.8 / (1.0 + np.exp(r - radius))


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    """The series as .athdf files, written in shuffled order (file k holds frame order[k])."""
    folder = tmp_path_factory.mktemp("run")
    order = np.random.default_rng(1).permutation(len(TIMES))
    paths = []
    for k, frame in enumerate(order):
        dataset, name, block, dtype = LAYOUTS[k % len(LAYOUTS)]
        rho = blast(TIMES[frame]).transpose(2, 1, 0)  # [z, y, x] as Athena++ stores it
        paths.append(str(write_athdf(folder / f"blast.{k:05d}.athdf",
                                     {dataset: {name: rho, "press": rho}}, block=block, box=BOX,
                                     time=TIMES[frame], dtype=dtype, seed=k)))
    return paths


def _cut(t, start, size):
    """Planted rho on cells start .. start + size - 1 (wrapped) along each axis."""
    idx = [(s + np.arange(size)) % N for s in start]
    return blast(t, np.meshgrid(*idx, indexing="ij"))


def test_series_becomes_time_ordered_clips_around_the_detected_centre(series):
    clips = simulation_clips(series, grid=16, clip_length=3, input_length=1)
    np.testing.assert_array_equal(clips["times"], TIMES)
    dx = np.array([0.1, 0.1, 0.2])
    cells = (clips["centre"] - np.array([0.0, -1.2, 0.0])) / dx - 0.5
    np.testing.assert_allclose(cells, CENTRE, atol=0.02)
    np.testing.assert_allclose(clips["box_size"], 16 * dx)
    assert clips["units"]["length"] == "code_length" and clips["units"]["time"] == "code_time"
    np.testing.assert_array_equal(clips["clips"], [[[0, 1], [3, 1]], [[1, 2], [4, 2]]])
    start = np.floor(CENTRE + 0.5).astype(int) - 8
    truth = np.stack([_cut(t, start, 16) for t in TIMES])
    assert clips["normalisation"].kind == "max"
    np.testing.assert_allclose(clips["normalisation"].scale, truth.max(), rtol=1e-6)
    assert clips["frames"].shape == (6, 1, 16, 16, 16) and clips["frames"].dtype == np.float32
    np.testing.assert_allclose(clips["frames"][:, 0], truth / truth.max(), rtol=1e-6, atol=1e-7)
    # the shell sits in the middle of the crop although the blast straddles two faces
    assert np.unravel_index(np.argmax(clips["frames"][0, 0]), (16,) * 3)[2] in range(5, 12)


def test_detected_centre_is_the_planted_one_in_cells():
    density = np.stack([blast(t) for t in TIMES[:4]])
    np.testing.assert_allclose(detect_centre(density), CENTRE, atol=0.02)
    np.testing.assert_allclose(detect_centre(np.roll(density, 5, axis=1)),
                               (CENTRE + [5, 0, 0]) % N, atol=0.02)


def test_given_centre_and_whole_box_block_resampling(series):
    given = (0.5, 0.8, 2.3)  # box units -> cells (0.5 / 0.1 - 0.5, 2 / 0.1 - 0.5, 2.3 / 0.2 - 0.5)
    clips = simulation_clips(series, grid=12, region=N, centre=given, normalisation="log",
                             log_bounds=(-1.0, 1.0))
    np.testing.assert_allclose(clips["centre"], given)
    np.testing.assert_allclose(clips["box_size"], [2.4, 2.4, 4.8])
    start = np.floor(np.array([4.5, 19.5, 11.0]) + 0.5).astype(int) - 12
    for frame, t in zip(clips["frames"][:, 0], TIMES):
        whole = _cut(t, start, N)
        truth = np.empty((12, 12, 12))
        for i, j, k in np.ndindex(12, 12, 12):  # explicit 2^3 block means
            truth[i, j, k] = whole[2 * i:2 * i + 2, 2 * j:2 * j + 2, 2 * k:2 * k + 2].mean()
        np.testing.assert_allclose(frame, (np.log10(truth) + 1.0) / 2.0, atol=1e-6)
    physical = clips["normalisation"].density(clips["frames"][-1, 0])
    assert physical.min() > 0.1 and physical.max() < 10.0


def test_command_writes_a_loadable_file_and_refuses_to_overwrite(series, tmp_path, capsys):
    out = tmp_path / "clips.npz"
    assert main(["--out", str(out), *series, "--grid", "8", "--normalisation", "log",
                 "--log_bounds=-1,1", "--clip_length", "6"]) == 0
    data = load_sn_npz(out)
    assert data.frames.shape == (6, 1, 8, 8, 8) and data.num_clips == 1
    meta = data.metadata[0]
    np.testing.assert_array_equal(meta["times"], TIMES)
    assert meta["normalisation"].model_config() == {"kind": "log", "log_min": -1.0,
                                                    "log_max": 1.0}
    assert meta["units"]["density"] == "code_density" and meta["centre"].shape == (3,)
    before = out.read_bytes()
    assert main(["--out", str(out), *series]) == 2
    assert "clips.npz: file exists" in capsys.readouterr().err and out.read_bytes() == before


@pytest.mark.parametrize("kwargs, match", [
    ({"normalisation": "log"}, "log_bounds=None: the bounds"),
    ({"log_bounds": (0.0, 1.0)}, "normalisation=max, log_bounds=.*only with it"),
    ({"region": 25}, "region=25: expected 1 to 24 native cells"),
    ({"grid": 5, "region": 16}, "grid=5, region=16: .*block averages only"),
    ({"clip_length": 4}, "n_frames=6 must be a positive multiple of clip_length=4"),
    ({"grid": 0}, "grid=0: expected a positive number of cells"),
    ({"centre_frames": 0}, "centre_frames=0: expected at least 1"),
])
def test_bad_arguments_are_refused(series, kwargs, match):
    with pytest.raises(UserInputError, match=match):
        simulation_clips(series, **kwargs)


def test_mixed_meshes_and_repeated_times_are_refused(series, tmp_path):
    rho = np.ones((8, 8, 8))
    other = write_athdf(tmp_path / "small.athdf", {"prim": {"rho": rho}}, block=(8, 8, 8),
                        time=9.0)
    with pytest.raises(UserInputError, match=r"small.athdf: mesh 8 x 8 x 8 cells \(x, y, z\)"):
        simulation_clips(series[:2] + [str(other)])
    with pytest.raises(UserInputError, match="Time .* is that of"):
        simulation_clips(series[:2] + series[:1])
    with pytest.raises(UserInputError, match="no .athdf files"):
        simulation_clips([])


def test_outputs_without_mesh_data_give_lengths_in_cells(tmp_path):
    paths = [write_athdf(tmp_path / f"b{k}.athdf", {"prim": {"rho": blast(t).transpose(2, 1, 0)}},
                         block=(8, 8, 8), time=t, mesh_data=False) for k, t in enumerate(TIMES)]
    clips = simulation_clips(paths, grid=16)
    assert clips["units"]["length"] == "cell"
    np.testing.assert_allclose(clips["centre"], CENTRE + 0.5, atol=0.02)
    np.testing.assert_array_equal(clips["box_size"], [16, 16, 16])
    again = simulation_clips(paths, grid=16, centre=tuple(CENTRE + 0.5))
    np.testing.assert_array_equal(again["frames"], clips["frames"])
