"""Tests of iadet.robustness.corruptions: every corruption at every severity, seeding, the backend."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from iadet.errors import ConfigError, DataError, IadetError
from iadet.robustness import corruptions as C
from iadet.robustness.corruptions import (
    ALL,
    BENCHMARK,
    EXTRA,
    GROUPS,
    SEVERITIES,
    corrupt,
    image_seed,
    resolve_corruptions,
)

# Corruptions that draw from the RNG; the others are deterministic functions of the image.
RANDOM = {
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "speckle_noise",
    "glass_blur",
    "motion_blur",
    "snow",
    "frost",
    "fog",
    "spatter",
    "elastic_transform",
}


def make_image(height: int = 33, width: int = 45) -> np.ndarray:
    """A small odd-sized RGB image with edges, gradients and texture, so every corruption shows."""
    rng = np.random.default_rng(1234)
    y, x = np.mgrid[0:height, 0:width]
    image = np.stack([x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1), (x + y) % 256], axis=-1)
    image[height // 4 : height // 2, width // 4 : width // 2] = (250, 30, 30)
    noise = rng.integers(-20, 21, size=image.shape)
    return np.clip(image + noise, 0, 255).astype(np.uint8)


IMAGE = make_image()


# --------------------------------------------------------------------------- every corruption


@pytest.mark.parametrize("name", ALL)
def test_every_corruption_runs_at_every_severity(name: str) -> None:
    original = IMAGE.copy()
    for severity in SEVERITIES:
        out = corrupt(IMAGE, name, severity, seed=7)
        assert out.dtype == np.uint8
        assert out.shape == IMAGE.shape
        assert out.flags.c_contiguous
        assert not np.array_equal(out, IMAGE), f"{name} at severity {severity} left the image unchanged"
    np.testing.assert_array_equal(IMAGE, original)  # the input is never modified


@pytest.mark.parametrize("name", ALL)
def test_same_seed_same_result_and_seed_matters_only_for_random_ones(name: str) -> None:
    first = corrupt(IMAGE, name, 3, seed=11)
    np.testing.assert_array_equal(first, corrupt(IMAGE, name, 3, seed=11))
    other = corrupt(IMAGE, name, 3, seed=12)
    if name in RANDOM:
        assert not np.array_equal(first, other)
    else:
        np.testing.assert_array_equal(first, other)


def test_severity_makes_noise_stronger() -> None:
    errors = [
        np.abs(corrupt(IMAGE, "gaussian_noise", s, seed=3).astype(int) - IMAGE).mean() for s in SEVERITIES
    ]
    assert errors == sorted(errors) and errors[0] < errors[-1]


def test_global_numpy_rng_is_left_as_it_was() -> None:
    np.random.seed(2024)
    expected = np.random.random(3)
    np.random.seed(2024)
    corrupt(IMAGE, "gaussian_noise", 2, seed=5)
    corrupt(IMAGE, "impulse_noise", 2, seed=5)
    np.testing.assert_array_equal(np.random.random(3), expected)


def test_threads_get_the_same_results_as_a_serial_run() -> None:
    from concurrent.futures import ThreadPoolExecutor

    jobs = [
        (name, seed)
        for name in ("gaussian_noise", "impulse_noise", "frost", "motion_blur")
        for seed in range(4)
    ]
    serial = [corrupt(IMAGE, name, 3, seed=seed) for name, seed in jobs]
    with ThreadPoolExecutor(max_workers=4) as pool:
        threaded = list(pool.map(lambda job: corrupt(IMAGE, job[0], 3, seed=job[1]), jobs))
    for a, b in zip(serial, threaded):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("shape", [(10, 7, 3), (1, 1, 3), (31, 200, 3), (37, 53, 3), (128, 96, 3)])
def test_odd_and_tiny_sizes_keep_their_shape(shape: tuple[int, int, int]) -> None:
    image = make_image(*shape[:2])
    for name in ("glass_blur", "zoom_blur", "frost", "fog", "snow", "elastic_transform", "pixelate"):
        out = corrupt(image, name, 5, seed=1)
        assert out.shape == shape and out.dtype == np.uint8, name


def test_grayscale_input_is_returned_as_rgb() -> None:
    gray = IMAGE[:, :, 0]
    out = corrupt(gray, "contrast", 2, seed=0)
    assert out.shape == (*gray.shape, 3)
    np.testing.assert_array_equal(out[:, :, 0], out[:, :, 1])
    np.testing.assert_array_equal(out, corrupt(gray[:, :, None], "contrast", 2, seed=0))
    np.testing.assert_array_equal(out, corrupt(np.repeat(gray[:, :, None], 3, 2), "contrast", 2, seed=0))


# --------------------------------------------------------------------------- the backend


def test_gaussian_blur_blurs_each_channel_separately() -> None:
    # a 3-D blur (no channel_axis) would bleed red into green/blue
    red = np.zeros((40, 40, 3), np.uint8)
    red[..., 0] = 200
    red[10:30, 10:30, 0] = 40
    out = corrupt(red, "gaussian_blur", 2, seed=0)
    assert out[..., 1:].max() == 0
    assert 40 < out[20, 11, 0] < 200  # and it does blur within the channel


def test_glass_blur_shuffles_locally_and_blurs() -> None:
    out = corrupt(IMAGE, "glass_blur", 5, seed=0)
    plain_blur = corrupt(IMAGE, "gaussian_blur", 1, seed=0)
    assert not np.array_equal(out, plain_blur)
    assert np.abs(np.diff(out.astype(int), axis=1)).mean() < np.abs(np.diff(IMAGE.astype(int), axis=1)).mean()


def test_fog_adds_a_structured_haze() -> None:
    gray = np.full((64, 48, 3), 100, np.uint8)
    out = corrupt(gray, "fog", 3, seed=4).astype(int)
    assert out.std() > 1  # the plasma fractal varies over the image
    assert np.array_equal(out[..., 0], out[..., 1])  # the same haze on every channel


def test_frost_overlays_the_bundled_frost_images() -> None:
    black = np.zeros((50, 60, 3), np.uint8)
    outs = [corrupt(black, "frost", 1, seed=s) for s in range(3)]
    for out in outs:
        assert out.mean() > 10  # frost texture (from the package's PNG/JPEG files) shows on black
        assert out.std() > 1
    assert not np.array_equal(outs[0], outs[1])


REPRODUCE = (
    ("glass_blur", 3, 5),
    ("impulse_noise", 2, 5),
    ("frost", 4, 1),
    ("fog", 5, 9),
    ("elastic_transform", 1, 3),
)


def _digests(image: np.ndarray, jobs) -> list[str]:
    import hashlib

    return [hashlib.sha256(corrupt(image, n, s, seed=k).tobytes()).hexdigest() for n, s, k in jobs]


def test_result_is_a_function_of_image_name_severity_and_seed_only() -> None:
    # The same cells in a fresh interpreter, in reverse order, after other corruptions and with
    # NumPy's global RNG and numba's own RNG (glass_blur's) in other states, give the same pixels,
    # with warnings as errors (nothing deprecated is used); the caller's RNG is left untouched.
    here = _digests(IMAGE, REPRODUCE)
    code = textwrap.dedent(
        f"""
        import warnings
        warnings.simplefilter("error")
        import numpy as np
        from iadet.robustness.corruptions import corrupt
        from test_corruptions import IMAGE, _digests
        np.random.seed(99)
        for seed in (3, 4):
            corrupt(IMAGE, "glass_blur", 1, seed=seed)  # advances numba's RNG
            corrupt(IMAGE, "shot_noise", 2, seed=seed)
        state = np.random.get_state()[1].copy()
        print(" ".join(reversed(_digests(IMAGE, list(reversed({list(REPRODUCE)!r}))))))
        assert (np.random.get_state()[1] == state).all()
        """
    )
    env = {**__import__("os").environ, "PYTHONPATH": str(__import__("pathlib").Path(__file__).parent)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == here


def test_unmaintained_release_is_refused_with_the_install_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    def old_glass_blur(x, severity=1):  # 1.1.2's signature: no seed
        return x

    package = types.ModuleType("imagecorruptions")
    module = types.ModuleType("imagecorruptions.corruptions")
    module.glass_blur = old_glass_blur
    module.impulse_noise = old_glass_blur
    package.corruptions = module
    package.corruption_dict = {}
    monkeypatch.setattr(C, "_BACKEND", None)
    monkeypatch.setitem(sys.modules, "imagecorruptions", package)
    monkeypatch.setitem(sys.modules, "imagecorruptions.corruptions", module)
    with pytest.raises(IadetError, match="unmaintained release .* imagecorruptions-imaug==1.1.5"):
        corrupt(IMAGE, "fog", 1, seed=0)


def test_prepare_runs_every_corruption_once() -> None:
    C.prepare(["glass_blur", "fog"])  # compiles glass_blur's kernel; no error for a tiny image
    with pytest.raises(ConfigError, match="unknown corruption 'rain'"):
        C.prepare(["rain"])


def test_normalise_output_clips_fills_channels_and_fixes_size() -> None:
    out = C._normalise_output(np.array([[-5.0, 300.0], [12.7, np.nan]]), 2, 2)
    assert out.dtype == np.uint8 and out.shape == (2, 2, 3)
    np.testing.assert_array_equal(out[..., 0], [[0, 255], [12, 0]])
    assert C._normalise_output(np.zeros((5, 6, 3)), 3, 4).shape == (3, 4, 3)  # cropped
    assert C._normalise_output(np.zeros((2, 2, 3), np.uint8), 3, 4).shape == (3, 4, 3)  # resized


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "gausian_noise"}, "did you mean 'gaussian_noise'"),
        ({"name": "rain"}, "unknown corruption 'rain'"),
        ({"severity": 0}, "severity"),
        ({"severity": 6}, "severity"),
        ({"severity": True}, "severity"),
        ({"severity": 2.0}, "severity"),
        ({"seed": -1}, "seed"),
        ({"seed": 2**32}, "seed"),
        ({"seed": "1"}, "seed"),
    ],
)
def test_bad_arguments_raise_config_error(kwargs: dict, message: str) -> None:
    arguments = {"image": IMAGE, "name": "fog", "severity": 1, "seed": 0, **kwargs}
    with pytest.raises(ConfigError, match=message):
        corrupt(arguments.pop("image"), arguments.pop("name"), arguments.pop("severity"), **arguments)


@pytest.mark.parametrize(
    "image",
    [
        IMAGE.astype(np.float32),
        np.zeros((8, 8, 4), np.uint8),
        np.zeros((2, 8, 8, 3), np.uint8),
        np.zeros((0, 8, 3), np.uint8),
        [[1, 2], [3, 4]],
    ],
)
def test_bad_images_raise_data_error(image: object) -> None:
    with pytest.raises(DataError, match="image to corrupt"):
        corrupt(image, "fog", 1, seed=0)  # type: ignore[arg-type]


def test_missing_package_is_reported_with_the_install_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(C, "_BACKEND", None)
    monkeypatch.setitem(sys.modules, "imagecorruptions", None)  # makes the import fail
    with pytest.raises(IadetError, match="pip install --no-deps imagecorruptions-imaug==1.1.5"):
        corrupt(IMAGE, "fog", 1, seed=0)


# --------------------------------------------------------------------------- names and groups


def test_names_and_groups_match_the_package() -> None:
    import imagecorruptions

    assert BENCHMARK == tuple(imagecorruptions.get_corruption_names("common"))
    assert EXTRA == tuple(imagecorruptions.get_corruption_names("validation"))
    for group, names in GROUPS.items():
        assert names == tuple(imagecorruptions.get_corruption_names(group))
    assert sum(GROUPS.values(), ()) == BENCHMARK


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("benchmark", list(BENCHMARK)),
        ("all", list(BENCHMARK + EXTRA)),
        ("noise", ["gaussian_noise", "shot_noise", "impulse_noise"]),
        ("blur", ["defocus_blur", "glass_blur", "motion_blur", "zoom_blur"]),
        ("weather", ["snow", "frost", "fog", "brightness"]),
        ("digital", ["contrast", "elastic_transform", "pixelate", "jpeg_compression"]),
        ("fog", ["fog"]),
        ("fog,snow", ["fog", "snow"]),
        (" Fog , Motion-Blur,fog,", ["fog", "motion_blur"]),
        ("noise,gaussian_noise,saturate", ["gaussian_noise", "shot_noise", "impulse_noise", "saturate"]),
    ],
)
def test_resolve_corruptions(spec: str, expected: list[str]) -> None:
    assert resolve_corruptions(spec) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "empty"),
        (" , ", "empty"),
        ("fog,snwo", "unknown corruption 'snwo' in --corruptions \\(did you mean 'snow'\\?\\)"),
        ("benchmarks", "did you mean 'benchmark'"),
        ("xyzzy", "valid: benchmark, all, noise, blur, weather, digital or a name among gaussian_noise"),
    ],
)
def test_resolve_corruptions_errors(spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve_corruptions(spec)


# --------------------------------------------------------------------------- per-image seeds


def test_image_seed_is_stable_and_spread() -> None:
    # Fixed values: the same in every process and on every machine (no salted hash()).
    assert image_seed(0, "000001") == image_seed(0, "000001")
    assert image_seed(0, 7) == image_seed(0, "7")
    seeds = {image_seed(base, f"{i:06d}") for base in (0, 1) for i in range(500)}
    assert len(seeds) == 1000
    assert all(0 <= s < 2**32 for s in seeds)
    with pytest.raises(ConfigError, match="seed"):
        image_seed(-1, "a")


def test_image_seed_known_values() -> None:
    assert (image_seed(0, "000001"), image_seed(42, "2008_000123")) == KNOWN_SEEDS


KNOWN_SEEDS = (3904217064, 2430588097)
