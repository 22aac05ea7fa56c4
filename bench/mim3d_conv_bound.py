"""How fast a 3D-MIM training step at 16^3 can be on this CPU: the convolution bound.

Times the unit convolution of the step (5^3 kernel, 32 -> 128 channels, batch 1) forward,
input gradient and filter gradient in float32 and bfloat16, prints GFLOP/s, and the time
the step's 404 such units (zero-state convolutions skipped) need at those rates. Also times
the same convolution by FFT (18^3 transforms, exact for 'same' padding on 16^3), split into
transforms and the spectral product.

    python bench/mim3d_conv_bound.py [--grid 16] [--units 404] [--repeats 5]
"""
import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import tensorflow as tf  # noqa: E402

C_IN, C_OUT, K = 32, 128, 5


def seconds(fn, repeats):
    """Mean seconds of ``repeats`` calls after one warm-up call."""
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def direct(grid, dtype, repeats):
    shape = (1, grid, grid, grid)
    x = tf.cast(tf.random.normal(shape + (C_IN,)), dtype)
    dy = tf.cast(tf.random.normal(shape + (C_OUT,)), dtype)
    kernel = tf.cast(tf.random.normal((K, K, K, C_IN, C_OUT)) * 0.05, dtype)
    ones = [1] * 5
    calls = {
        "forward": lambda: tf.nn.conv3d(x, kernel, ones, "SAME"),
        "input gradient": lambda: tf.raw_ops.Conv3DBackpropInputV2(
            input_sizes=shape + (C_IN,), filter=kernel, out_backprop=dy, strides=ones, padding="SAME"),
        "filter gradient": lambda: tf.raw_ops.Conv3DBackpropFilterV2(
            input=x, filter_sizes=(K, K, K, C_IN, C_OUT), out_backprop=dy, strides=ones,
            padding="SAME"),
    }
    return {name: seconds(tf.function(fn), repeats) for name, fn in calls.items()}


def fft(grid, repeats):
    n = grid + K // 2  # no wrap-around reaches the 'same' output window
    freqs = n * n * (n // 2 + 1)
    x = tf.random.normal((1, C_IN, n, n, n))
    spectrum = tf.complex(tf.random.normal((freqs, C_IN, C_OUT)), tf.random.normal((freqs, C_IN, C_OUT)))
    x_hat = tf.reshape(tf.transpose(tf.signal.rfft3d(x), (0, 2, 3, 4, 1)), (freqs, 1, C_IN))
    y_hat = tf.signal.rfft3d(tf.random.normal((1, C_OUT, n, n, n)))
    times = {
        "transforms": seconds(tf.function(lambda: tf.signal.rfft3d(x)), repeats)
        + seconds(tf.function(lambda: tf.signal.irfft3d(y_hat, fft_length=(n, n, n))), repeats),
        "spectral product": seconds(tf.function(lambda: tf.matmul(x_hat, spectrum)), repeats),
    }
    return times, spectrum.shape.num_elements() * 8 / 1e6


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--grid", type=int, default=16)
    parser.add_argument("--units", type=int, default=404)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    gflop = 2 * args.grid ** 3 * K ** 3 * C_IN * C_OUT / 1e9
    print(f"unit convolution {args.grid}^3, {K}^3 kernel, {C_IN}->{C_OUT} channels: "
          f"{gflop:.2f} GFLOP per pass; {args.units} units x 3 passes = "
          f"{3 * args.units * gflop / 1e3:.2f} TFLOP per step")
    for dtype in (tf.float32, tf.bfloat16):
        times = direct(args.grid, dtype, args.repeats)
        rates = "  ".join(f"{name} {t * 1e3:.1f} ms ({gflop / t:.0f} GFLOP/s)" for name, t in times.items())
        print(f"{dtype.name:>8}: {rates}")
        print(f"{'':>8}  {args.units} units at these rates: {args.units * sum(times.values()):.2f} s; "
              f"all at the forward rate: {3 * args.units * times['forward']:.2f} s")
    times, megabytes = fft(args.grid, args.repeats)
    print(f"     fft: forward by FFT, transforms {times['transforms'] * 1e3:.1f} ms + spectral "
          f"product {times['spectral product'] * 1e3:.1f} ms (kernel spectrum {megabytes:.0f} MB)")


if __name__ == "__main__":
    main()
