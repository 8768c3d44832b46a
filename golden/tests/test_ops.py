"""Unit and property tests of golden.ops.

Every directed example is worked out by hand in the comment next to it. The property tests
compare each op with a plain-Python reference written here, independently of golden/ (nested
loops over pixels, channels and taps, Python int arithmetic, no NumPy in the reference)."""
from __future__ import annotations

import math
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from golden import ops

PROP = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def arr(x) -> np.ndarray:
    return np.array(x, dtype=np.int64)


# =============================================================================================
# Hand-computed examples
# =============================================================================================


class TestDense:
    def test_hand_example(self):
        # a = [1, 2, 3], W = [[1, -1, 2], [0, 3, -3]], bias = [5, -1]
        # acc0 = 5 + 1*1 - 1*2 + 2*3 = 5 + 1 - 2 + 6 = 10
        # acc1 = -1 + 0*1 + 3*2 - 3*3 = -1 + 0 + 6 - 9 = -4
        y = ops.dense(arr([1, 2, 3]), arr([[1, -1, 2], [0, 3, -3]]), arr([5, -1]), 2, 3)
        assert y.tolist() == [10, -4]
        assert y.dtype == np.int64

    def test_no_bias_and_flatten(self):
        # a (1, 2, 2) flattened in (H, W, C) order is [1, 0, 2, 3]; W row = [1, 1, 1, -1]
        # acc = 1 + 0 + 2 - 3 = 0
        y = ops.dense(arr([[[1, 0], [2, 3]]]), arr([[1, 1, 1, -1]]), None, 2, 2)
        assert y.tolist() == [0]

    def test_acc_bits_overflow(self):
        # a = [3, 3], w = [3, 3]: acc = 18; 5 signed bits hold [-16, 15] -> refused
        with pytest.raises(ValueError, match=r"dense result: value 18 .*5-bit"):
            ops.dense(arr([3, 3]), arr([[3, 3]]), None, 2, 3, acc_bits=5)
        # 6 signed bits hold [-32, 31]: accepted
        assert ops.dense(arr([3, 3]), arr([[3, 3]]), None, 2, 3, acc_bits=6).tolist() == [18]


class TestConv2d:
    def test_3x3_stride1_pad0(self):
        # a = [[1,2,3],[4,5,6],[7,8,9]], w = [[1,0,-1]]*3 (ternary, W=2)
        # acc = (1 + 4 + 7) - (3 + 6 + 9) = 12 - 18 = -6
        a = arr([[1, 2, 3], [4, 5, 6], [7, 8, 9]])[:, :, None]
        w = arr([[1, 0, -1]] * 3)[None, :, :, None]
        y = ops.conv2d(a, w, None, 1, 0, 4, 2)
        assert y.shape == (1, 1, 1) and y[0, 0, 0] == -6

    def test_3x3_pad1_orientation(self):
        # a = [[1, 2], [3, 4]]; a single tap at (ky, kx) = (0, 0) reads a[y - 1, x - 1]
        # (padding 1), so out = [[0, 0], [0, 1]]; the centre tap is the identity.
        a = arr([[1, 2], [3, 4]])[:, :, None]
        w = np.zeros((1, 3, 3, 1), dtype=np.int64)
        w[0, 0, 0, 0] = 1
        assert ops.conv2d(a, w, None, 1, 1, 3, 2)[:, :, 0].tolist() == [[0, 0], [0, 1]]
        w = np.zeros((1, 3, 3, 1), dtype=np.int64)
        w[0, 1, 1, 0] = 1
        assert ops.conv2d(a, w, None, 1, 1, 3, 2)[:, :, 0].tolist() == [[1, 2], [3, 4]]
        # bottom-right tap (2, 2) reads a[y + 1, x + 1]: [[4, 0], [0, 0]]
        w = np.zeros((1, 3, 3, 1), dtype=np.int64)
        w[0, 2, 2, 0] = 1
        assert ops.conv2d(a, w, None, 1, 1, 3, 2)[:, :, 0].tolist() == [[4, 0], [0, 0]]

    def test_1x1_stride2(self):
        # a[y, x] = 4y + x on 4x4; 1x1 kernel of weight 1, stride 2 picks a[0::2, 0::2]
        # = [[0, 2], [8, 10]]
        a = (4 * np.arange(4)[:, None] + np.arange(4)[None, :])[:, :, None].astype(np.int64)
        y = ops.conv2d(a, arr([[[[1]]]]), None, 2, 0, 4, 2)
        assert y[:, :, 0].tolist() == [[0, 2], [8, 10]]

    def test_3x3_stride2_pad1(self):
        # same a; all-ones 3x3, stride 2, pad 1: out size (4 + 2 - 3) // 2 + 1 = 2
        # out[0,0] = a[0..1, 0..1]       = 0+1+4+5             = 10
        # out[0,1] = a[0..1, 1..3]       = 1+2+3+5+6+7         = 24
        # out[1,0] = a[1..3, 0..1]       = 4+5+8+9+12+13       = 51
        # out[1,1] = a[1..3, 1..3]       = 18 + 30 + 42        = 90
        a = (4 * np.arange(4)[:, None] + np.arange(4)[None, :])[:, :, None].astype(np.int64)
        y = ops.conv2d(a, np.ones((1, 3, 3, 1), dtype=np.int64), None, 2, 1, 4, 2)
        assert y[:, :, 0].tolist() == [[10, 24], [51, 90]]

    def test_1x1_multichannel(self):
        # a = [3, 1] at one pixel; W = [[1, 2], [-1, 1]] -> [3 + 2, -3 + 1] = [5, -2]
        y = ops.conv2d(arr([[[3, 1]]]), arr([[1, 2], [-1, 1]])[:, None, None, :], None, 1, 0,
                       2, 3)
        assert y.tolist() == [[[5, -2]]]

    def test_3x3_multichannel_bias(self):
        # channel 0 all 1, channel 1 all 2; weights +1 on channel 0, -1 on channel 1, bias 4
        # acc = 9*1 - 9*2 + 4 = -5 ; second output channel: +1 on both, bias -1 -> 27 - 1 = 26
        a = np.stack([np.ones((3, 3)), 2 * np.ones((3, 3))], axis=-1).astype(np.int64)
        w = np.zeros((2, 3, 3, 2), dtype=np.int64)
        w[0, :, :, 0], w[0, :, :, 1] = 1, -1
        w[1] = 1
        y = ops.conv2d(a, w, arr([4, -1]), 1, 0, 2, 2)
        assert y.tolist() == [[[-5, 26]]]

    def test_im2col_order(self):
        # a 2x2 map with 2 channels, values 10*y + 2*x + c; one 2x2 patch in (ky, kx, c) order:
        # (0,0,0)=0 (0,0,1)=1 (0,1,0)=2 (0,1,1)=3 (1,0,0)=10 (1,0,1)=11 (1,1,0)=12 (1,1,1)=13
        a = arr([[[0, 1], [2, 3]], [[10, 11], [12, 13]]])
        assert ops.im2col(a, 2, 1, 0).tolist() == [[[0, 1, 2, 3, 10, 11, 12, 13]]]

    def test_conv_out_size(self):
        # (5 + 2 - 3) // 2 + 1 = 3 ; (4 + 0 - 3) // 2 + 1 = 1 ; (28 + 2 - 3) // 1 + 1 = 28
        assert ops.conv_out_size(5, 3, 2, 1) == 3
        assert ops.conv_out_size(4, 3, 2, 0) == 1
        assert ops.conv_out_size(28, 3, 1, 1) == 28
        with pytest.raises(ValueError, match="kernel: 3 .* input size 2"):
            ops.conv_out_size(2, 3, 1, 0)


class TestThreshold:
    def test_around_each_threshold(self):
        # T = [-2, 0, 3] (A = 2, L = 3); y = #{k : x >= T_k}
        # x:  -3 -2 -1  0  1  2  3  4
        # y:   0  1  1  2  2  2  3  3
        x = arr([-3, -2, -1, 0, 1, 2, 3, 4])[:, None]
        y = ops.threshold(x, arr([[-2, 0, 3]]), 2)
        assert y[:, 0].tolist() == [0, 1, 1, 2, 2, 2, 3, 3]

    def test_equal_thresholds_skip_a_code(self):
        # T = [1, 1, 5]: x = 0 -> 0, x = 1 -> 2 (both 1s pass, code 1 never appears),
        # x = 4 -> 2, x = 5 -> 3
        y = ops.threshold(arr([0, 1, 4, 5])[:, None], arr([[1, 1, 5]]), 2)
        assert y[:, 0].tolist() == [0, 2, 2, 3]
        # all equal: a step from 0 straight to 3 at x = 7
        y = ops.threshold(arr([6, 7])[:, None], arr([[7, 7, 7]]), 2)
        assert y[:, 0].tolist() == [0, 3]

    def test_negative_thresholds(self):
        # T = [-5, -4, -3]: -6 -> 0, -5 -> 1, -4 -> 2, -3 -> 3, 100 -> 3
        y = ops.threshold(arr([-6, -5, -4, -3, 100])[:, None], arr([[-5, -4, -3]]), 2)
        assert y[:, 0].tolist() == [0, 1, 2, 3, 3]

    def test_per_channel_rows_and_one_bit(self):
        # two pixels x two channels; channel 0 uses T = [0, 1, 2], channel 1 T = [10, 20, 30]
        # pixel (1, 15): ch0 1 >= 0, 1 -> 2 ; ch1 15 >= 10 -> 1
        # pixel (5, 30): ch0 -> 3 ; ch1 -> 3
        y = ops.threshold(arr([[1, 15], [5, 30]]), arr([[0, 1, 2], [10, 20, 30]]), 2)
        assert y.tolist() == [[2, 1], [3, 3]]
        # A = 1: one threshold per channel, a binary step at T = 1 (ReLU-like: x > 0)
        assert ops.threshold(arr([[-1], [0], [1]]), arr([[1]]), 1)[:, 0].tolist() == [0, 0, 1]

    def test_thresholds_checked_against_x_bits(self):
        # 4-bit signed accumulators live in [-8, 7]; a threshold of 8 is out of that range
        with pytest.raises(ValueError, match=r"thresholds: value 8 .*4-bit signed"):
            ops.threshold(arr([[0]]), arr([[1, 2, 8]]), 2, x_bits=4)


class TestLog2:
    def test_offset0(self):
        # A = 2, s = 0: y = clamp(bitlen(x), 0, 3)
        # x:   -5  0  1  2  3(2^2-1)  4(2^2)  7  8  1000
        # y:    0  0  1  2  2         3       3  3  3 (saturated)
        x = arr([-5, 0, 1, 2, 3, 4, 7, 8, 1000])
        assert ops.log2_act(x, 0, 2).tolist() == [0, 0, 1, 2, 2, 3, 3, 3, 3]

    def test_offset2(self):
        # A = 2, s = 2: y = clamp(bitlen(x) - 2, 0, 3); codes change at 2^2, 2^3, 2^4
        # x:  3 (bitlen 2 -> 0)  4 (3 -> 1)  7 (3 -> 1)  8 (4 -> 2)  15 (4 -> 2)  16 (5 -> 3)
        #     2^20 (21 -> 3, saturated), -1 -> 0
        x = arr([3, 4, 7, 8, 15, 16, 1 << 20, -1])
        assert ops.log2_act(x, 2, 2).tolist() == [0, 1, 1, 2, 2, 3, 3, 0]

    def test_wide_values(self):
        # A = 8 (top code 255 never reached here): 2^62 has bit length 63, 2^63 - 1 too,
        # 2^32 - 1 has 32, 2^32 has 33
        x = arr([1 << 62, (1 << 63) - 1, (1 << 32) - 1, 1 << 32])
        assert ops.log2_act(x, 0, 8).tolist() == [63, 63, 32, 33]
        assert ops.bit_length(arr([0, 1, 255, 256])).tolist() == [0, 1, 8, 9]


class TestShift:
    def test_hand_example(self):
        # A = 2, s = 2: y = min(max(x, 0) >> 2, 3)
        # x: -7 -> 0, 3 -> 0, 4 -> 1, 7 -> 1, 12 -> 3, 15 -> 3, 16 -> min(4, 3) = 3
        x = arr([-7, 3, 4, 7, 12, 15, 16])
        assert ops.shift_quant(x, 2, 2).tolist() == [0, 0, 1, 1, 3, 3, 3]
        # s = 0 passes small values through: 2 -> 2, 9 -> 3 (A = 2)
        assert ops.shift_quant(arr([2, 9]), 0, 2).tolist() == [2, 3]

    def test_x_bits_checked(self):
        with pytest.raises(ValueError, match=r"x: value -9 .*4-bit signed"):
            ops.shift_quant(arr([-9]), 0, 2, x_bits=4)


class TestResidualAdd:
    def test_saturation_both_ways(self):
        # out_bits = 4 -> [-8, 7]
        # 5 + 4 = 9 -> 7 ; -5 + -4 = -9 -> -8 ; 3 + 4 = 7 (exact top) ; -4 + -4 = -8 (exact
        # bottom) ; 7 + -8 = -1
        m, r = arr([5, -5, 3, -4, 7]), arr([4, -4, 4, -4, -8])
        assert ops.residual_add(m, r, 4).tolist() == [7, -8, 7, -8, -1]

    def test_alignment_shifts(self):
        # shifts (0, 1): m + 2r. m = 1, r = 3 -> 1 + 6 = 7 ; m = -1, r = -2 -> -5
        assert ops.residual_add(arr([1, -1]), arr([3, -2]), 8, shifts=(0, 1)).tolist() == [7, -5]
        # shifts (-1, 0): floor(m / 2) + r, floor on negatives (not truncation toward 0):
        # m = -3 -> floor(-1.5) = -2 ; m = -1 -> -1 ; m = 3 -> 1 ; m = 5 -> 2 ; r = 0
        m = arr([-3, -1, 3, 5])
        assert ops.residual_add(m, arr([0] * 4), 8, shifts=(-1, 0)).tolist() == [-2, -1, 1, 2]
        # shifts (-2, -2): floor(-5 / 4) + floor(6 / 4) = -2 + 1 = -1
        assert ops.residual_add(arr([-5]), arr([6]), 8, shifts=(-2, -2)).tolist() == [-1]
        # saturation after alignment: 60 * 2 + 10 = 130 > 127 (8 bits) -> 127
        assert ops.residual_add(arr([60]), arr([10]), 8, shifts=(1, 0)).tolist() == [127]

    def test_input_widths_checked(self):
        with pytest.raises(ValueError, match=r"r: value 8 .*4-bit signed"):
            ops.residual_add(arr([0]), arr([8]), 6, m_bits=4, r_bits=4)


class TestMaxpool:
    def test_2x2(self):
        # a[y, x] = 4y + x on 4x4, channel 1 = 15 - a
        # ch0 window maxima: [[5, 7], [13, 15]]; ch1 = 15 - window minima [[0,2],[8,10]]
        # = [[15, 13], [7, 5]]
        a0 = 4 * np.arange(4)[:, None] + np.arange(4)[None, :]
        a = np.stack([a0, 15 - a0], axis=-1).astype(np.int64)
        y = ops.maxpool2d(a, 2)
        assert y[:, :, 0].tolist() == [[5, 7], [13, 15]]
        assert y[:, :, 1].tolist() == [[15, 13], [7, 5]]

    def test_stride1_and_floor_mode(self):
        # a = [[1,5,2],[0,3,9],[4,4,4]], k = 2, stride 1 -> [[5, 9], [4, 9]]
        a = arr([[1, 5, 2], [0, 3, 9], [4, 4, 4]])[:, :, None]
        assert ops.maxpool2d(a, 2, 1)[:, :, 0].tolist() == [[5, 9], [4, 9]]
        # 5x5 with k = 2: floor mode drops the last row and column -> 2x2; the 9 at (4, 4)
        # is never seen
        b = np.zeros((5, 5, 1), dtype=np.int64)
        b[4, 4, 0] = 9
        b[3, 3, 0] = 1
        assert ops.maxpool2d(b, 2)[:, :, 0].tolist() == [[0, 0], [0, 1]]

    def test_negative_accumulators(self):
        # pooling accumulators: max(-3, -7, -1, -9) = -1
        assert ops.maxpool2d(arr([[[-3], [-7]], [[-1], [-9]]]), 2).tolist() == [[[-1]]]


class TestArgmax:
    def test_ties_lowest_index(self):
        assert ops.argmax(arr([3, 7, 7, 1])) == 1
        assert ops.argmax(arr([-5, -5])) == 0
        assert ops.argmax(arr([0])) == 0
        assert ops.argmax(arr([-9, -2, -3, -2])) == 1
        assert ops.argmax(arr([4, 4, 4, 4])) == 0

    def test_empty(self):
        with pytest.raises(ValueError, match="logits: empty"):
            ops.argmax(np.zeros(0, dtype=np.int64))


class TestWidths:
    def test_signed_width(self):
        # [-b, b] needs b.bit_length() magnitude bits + 1 sign bit:
        # 0 -> 1, 1 -> 2 ([-2, 1]), 2 -> 3, 3 -> 3, 4 -> 4, 127 -> 8, 128 -> 9 (+128 needs 9),
        # 255 -> 9, 256 -> 10
        got = [ops.signed_width(b) for b in (0, 1, 2, 3, 4, 127, 128, 255, 256)]
        assert got == [1, 2, 3, 3, 4, 8, 9, 9, 10]

    def test_dot_bound_and_acc_width(self):
        # n = 9, A = 2, W = 3: 9 * 3 * 3 = 81 -> 81 < 128 -> 8 signed bits
        assert ops.dot_bound(9, 2, 3) == 81
        assert ops.acc_width(9, 2, 3) == 8
        # bias up to 47: 81 + 47 = 128 -> 9 bits; bias 46: 127 -> 8 bits
        assert ops.acc_width(9, 2, 3, 47) == 9
        assert ops.acc_width(9, 2, 3, 46) == 8
        # ternary (W = 2), A = 1, n = 1: 1 * 1 * 1 = 1 -> 2 bits
        assert ops.dot_bound(1, 1, 2) == 1 and ops.acc_width(1, 1, 2) == 2
        # MNIST-sized dense: 784 * 255 * 127 = 25_389_840 ; 2^24 < that < 2^25 -> 26 bits
        assert ops.dot_bound(784, 8, 8) == 25_389_840
        assert ops.acc_width(784, 8, 8) == 26

    def test_worst_case_shift(self):
        # bound 81 (n=9, A_in=2, W=3): ceil(log2 81) = 7 (64 < 81 <= 128); A = 2 -> 5
        assert ops.worst_case_shift(9, 2, 3, 2) == 5
        # bound 16 (n=16, A_in=1, W=2): ceil(log2 16) = 4 exactly; A = 2 -> 2
        assert ops.worst_case_shift(16, 1, 2, 2) == 2
        # bound 17: ceil(log2 17) = 5 -> 3
        assert ops.worst_case_shift(17, 1, 2, 2) == 3
        # bound 1: 0 ; A larger than the bound's width: clamped to 0
        assert ops.worst_case_shift(1, 1, 2, 2) == 0
        assert ops.worst_case_shift(9, 2, 3, 8) == 0
        # the worst case maps the bound to at most 2^A (clamped to the top code), never more
        # n=9, A_in=2, W=3, A=2: 81 >> 5 = 2 <= 4
        assert ops.shift_quant(arr([81]), 5, 2).tolist() == [2]

    def test_bops(self):
        # m=4, n=2, k=2: fan-in 8; 4 * 8 * (2*3 + 2 + 3 + log2 8) = 32 * 14 = 448
        assert ops.bops_per_pixel(4, 2, 2, 2, 3) == 448.0
        # dense m=10, n=16, k=1, A=W=2: 160 * (4 + 2 + 2 + 4) = 1920
        assert ops.bops_per_pixel(10, 16, 1, 2, 2) == 1920.0
        # a layer of 3x3 output pixels: 448 * 9 = 4032
        assert ops.bops_layer(4, 2, 2, 2, 3, out_pixels=9) == 4032.0
        # non-power-of-two fan-in: m=1, n=3, k=1, A=W=1: 3 * (1 + 1 + 1 + log2 3)
        assert ops.bops_per_pixel(1, 3, 1, 1, 1) == pytest.approx(3 * (3 + math.log2(3)))


# =============================================================================================
# Input validation: ValueError naming the argument and the offending value
# =============================================================================================


class TestValidation:
    def test_float_arrays(self):
        with pytest.raises(ValueError, match="a: expected an integer array, got dtype float64"):
            ops.dense(np.array([1.0, 2.0]), arr([[1, 1]]), None, 2, 2)
        with pytest.raises(ValueError, match="w: expected an integer array, got dtype float32"):
            ops.dense(arr([1, 2]), np.array([[1, 1]], dtype=np.float32), None, 2, 2)
        with pytest.raises(ValueError, match="bias: expected an integer array, got dtype float"):
            ops.dense(arr([1, 2]), arr([[1, 1]]), np.array([0.5]), 2, 2)
        with pytest.raises(ValueError, match="thresholds: expected an integer .* float64"):
            ops.threshold(arr([[1]]), np.array([[0.0, 1.0, 2.0]]), 2)
        with pytest.raises(ValueError, match="x: expected an integer array, got dtype float64"):
            ops.log2_act(np.array([1.5]), 0, 2)
        with pytest.raises(ValueError, match="x: expected an integer array, got dtype bool"):
            ops.shift_quant(np.array([True]), 0, 2)
        with pytest.raises(ValueError, match="logits: expected an integer .* float64"):
            ops.argmax(np.array([0.1, 0.2]))

    def test_out_of_range_codes_and_weights(self):
        # A = 2 codes are 0..3: 4 and -1 are refused, with their index
        with pytest.raises(ValueError, match=r"a: value 4 at index \(1,\) .*\[0, 3\]"):
            ops.dense(arr([0, 4]), arr([[1, 1]]), None, 2, 2)
        with pytest.raises(ValueError, match=r"a: value -1 at index \(0, 0, 0\)"):
            ops.conv2d(arr([[[-1]]]), arr([[[[1]]]]), None, 1, 0, 2, 2)
        # W = 3 weights are symmetric -3..3: -4 fits 3-bit two's complement but is refused
        with pytest.raises(ValueError, match=r"w: value -4 .*symmetric weight range \[-3, 3\]"):
            ops.dense(arr([1]), arr([[-4]]), None, 2, 3)
        with pytest.raises(ValueError, match=r"w: value 2 .*\[-1, 1\]"):
            ops.conv2d(arr([[[1]]]), arr([[[[2]]]]), None, 1, 0, 2, 2)

    def test_non_ascending_thresholds(self):
        with pytest.raises(ValueError, match=r"channel 1 is not ascending: T\[1\]=5 > T\[2\]=3"):
            ops.threshold(arr([[0, 0]]), arr([[0, 1, 2], [0, 5, 3]]), 2)

    def test_wrong_shapes(self):
        # L must be 2^A - 1 = 3
        with pytest.raises(ValueError, match=r"thresholds: shape \(1, 2\) does not match"):
            ops.threshold(arr([[0]]), arr([[0, 1]]), 2)
        # one row per channel of x
        with pytest.raises(ValueError, match=r"thresholds: shape \(1, 3\) does not match \(2, 3\)"):
            ops.threshold(arr([[0, 0]]), arr([[0, 1, 2]]), 2)
        with pytest.raises(ValueError, match=r"w: shape \(1, 3\) does not match \(\*, 2\)"):
            ops.dense(arr([1, 2]), arr([[1, 1, 1]]), None, 2, 2)
        with pytest.raises(ValueError, match=r"bias: shape \(2,\) does not match \(1,\)"):
            ops.dense(arr([1, 2]), arr([[1, 1]]), arr([0, 0]), 2, 2)
        with pytest.raises(ValueError, match=r"w: shape \(1, 1, 1, 3\) does not match "
                                             r"\(\*, \*, \*, 2\)"):
            ops.conv2d(np.zeros((3, 3, 2), np.int64), np.zeros((1, 1, 1, 3), np.int64), None,
                       1, 0, 2, 2)
        with pytest.raises(ValueError, match=r"w: kernel must be square, got shape \(1, 1, 3, 1\)"):
            ops.conv2d(np.zeros((3, 3, 1), np.int64), np.zeros((1, 1, 3, 1), np.int64), None,
                       1, 0, 2, 2)
        with pytest.raises(ValueError, match=r"a: expected an \(H, W, C\) map, got shape \(3, 3\)"):
            ops.conv2d(np.zeros((3, 3), np.int64), np.zeros((1, 1, 1, 3), np.int64), None,
                       1, 0, 2, 2)
        with pytest.raises(ValueError, match=r"a: expected an \(H, W, C\) map, got shape \(4,\)"):
            ops.maxpool2d(np.zeros(4, np.int64), 2)
        with pytest.raises(ValueError, match=r"r: shape \(2,\) does not match m's shape \(3,\)"):
            ops.residual_add(arr([1, 2, 3]), arr([1, 2]), 8)
        with pytest.raises(ValueError, match="kernel: 3 .* input size 2"):
            ops.maxpool2d(np.zeros((2, 2, 1), np.int64), 3)

    def test_bad_scalars(self):
        with pytest.raises(ValueError, match=r"offset: -1 is out of range \[0, 62\]"):
            ops.log2_act(arr([1]), -1, 2)
        with pytest.raises(ValueError, match=r"shift: expected an integer, got 1.5"):
            ops.shift_quant(arr([1]), 1.5, 2)
        with pytest.raises(ValueError, match=r"stride: 0 is out of range >= 1"):
            ops.conv2d(arr([[[1]]]), arr([[[[1]]]]), None, 0, 0, 2, 2)
        with pytest.raises(ValueError, match=r"a_bits: 0 is out of range \[1, 16\]"):
            ops.threshold(arr([[1]]), arr([[0]]), 0)
        with pytest.raises(ValueError, match=r"shifts: expected two alignment shifts, got \(1,\)"):
            ops.residual_add(arr([1]), arr([1]), 8, shifts=(1,))
        with pytest.raises(ValueError, match=r"shift: expected an integer, got True"):
            ops.align(arr([1]), True)
        with pytest.raises(ValueError, match=r"bits: 1 is out of range \[2, 63\]"):
            ops.saturate(arr([1]), 1)
        with pytest.raises(ValueError, match=r"bound: -1 is out of range >= 0"):
            ops.signed_width(-1)
        with pytest.raises(ValueError, match=r"n: 0 is out of range >= 1"):
            ops.dot_bound(0, 2, 2)
        with pytest.raises(ValueError, match=r"w_bits: 1 is out of range \[2, 32\]"):
            ops.dot_bound(1, 2, 1)
        with pytest.raises(ValueError, match=r"x: bit_length needs non-negative values, got -3"):
            ops.bit_length(arr([1, -3]))
        with pytest.raises(ValueError, match=r"k: 0 is out of range >= 1"):
            ops.bops_per_pixel(1, 1, 0, 2, 2)


# =============================================================================================
# Property tests against independent plain-Python references
# =============================================================================================


def ref_dense(a: list[int], w: list[list[int]], bias: list[int] | None) -> list[int]:
    out = []
    for m in range(len(w)):
        s = 0 if bias is None else bias[m]
        for n in range(len(a)):
            s += w[m][n] * a[n]
        out.append(s)
    return out


def ref_conv(a, w, bias, stride: int, pad: int):
    """a[y][x][c], w[o][ky][kx][c] nested lists; zero padding by bounds checks."""
    h, wd, cin = len(a), len(a[0]), len(a[0][0])
    cout, k = len(w), len(w[0])
    ho, wo = (h + 2 * pad - k) // stride + 1, (wd + 2 * pad - k) // stride + 1
    out = [[[0] * cout for _ in range(wo)] for _ in range(ho)]
    for oy in range(ho):
        for ox in range(wo):
            for o in range(cout):
                s = 0 if bias is None else bias[o]
                for ky in range(k):
                    for kx in range(k):
                        iy, ix = oy * stride + ky - pad, ox * stride + kx - pad
                        if 0 <= iy < h and 0 <= ix < wd:
                            for c in range(cin):
                                s += w[o][ky][kx][c] * a[iy][ix][c]
                out[oy][ox][o] = s
    return out


def ref_bitlen(v: int) -> int:
    n = 0
    while v > 0:
        v //= 2
        n += 1
    return n


def ref_log2(x: int, s: int, a_bits: int) -> int:
    if x <= 0:
        return 0
    return min(max(ref_bitlen(x) - s, 0), 2**a_bits - 1)


def ref_align(x: int, s: int) -> int:
    return x * 2**s if s >= 0 else x // 2 ** (-s)  # Python // floors


def ref_sat(x: int, bits: int) -> int:
    return min(max(x, -(2 ** (bits - 1))), 2 ** (bits - 1) - 1)


@st.composite
def conv_case(draw):
    k = draw(st.sampled_from([1, 2, 3]))
    stride = draw(st.sampled_from([1, 2]))
    pad = draw(st.integers(0, k - 1))
    h = draw(st.integers(max(1, k - 2 * pad), 6))
    wd = draw(st.integers(max(1, k - 2 * pad), 6))
    cin, cout = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    a_bits, w_bits = draw(st.integers(1, 4)), draw(st.integers(2, 4))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    wm = 2 ** (w_bits - 1) - 1
    a = rng.integers(0, 2**a_bits, size=(h, wd, cin))
    w = rng.integers(-wm, wm + 1, size=(cout, k, k, cin))
    bias = rng.integers(-20, 21, size=cout) if draw(st.booleans()) else None
    return a, w, bias, stride, pad, a_bits, w_bits


@PROP
@given(conv_case())
def test_conv2d_matches_loops(case):
    a, w, bias, stride, pad, a_bits, w_bits = case
    got = ops.conv2d(a, w, bias, stride, pad, a_bits, w_bits)
    want = ref_conv(a.tolist(), w.tolist(), None if bias is None else bias.tolist(), stride, pad)
    assert got.tolist() == want
    # the declared width always holds the result
    fan_in = w.shape[1] * w.shape[2] * w.shape[3]
    bb = 0 if bias is None else int(np.abs(bias).max())
    ops.conv2d(a, w, bias, stride, pad, a_bits, w_bits, ops.acc_width(fan_in, a_bits, w_bits, bb))


@PROP
@given(st.integers(1, 12), st.integers(1, 4), st.integers(1, 8), st.integers(2, 8),
       st.integers(0, 2**32 - 1), st.booleans())
def test_dense_matches_loops(n, m, a_bits, w_bits, seed, with_bias):
    rng = np.random.default_rng(seed)
    wm = 2 ** (w_bits - 1) - 1
    a = rng.integers(0, 2**a_bits, size=n)
    w = rng.integers(-wm, wm + 1, size=(m, n))
    bias = rng.integers(-1000, 1001, size=m) if with_bias else None
    got = ops.dense(a, w, bias, a_bits, w_bits)
    assert got.tolist() == ref_dense(a.tolist(), w.tolist(),
                                     None if bias is None else bias.tolist())
    assert all(abs(v) <= ops.dot_bound(n, a_bits, w_bits) + (1000 if with_bias else 0)
               for v in got.tolist())


@PROP
@given(st.integers(1, 4), st.integers(1, 3), st.integers(0, 2**32 - 1))
def test_threshold_matches_count(a_bits, channels, seed):
    rng = np.random.default_rng(seed)
    levels = 2**a_bits - 1
    # ascending rows with repeats (steps of 0 are likely) and negative starts
    t = np.cumsum(rng.integers(0, 4, size=(channels, levels)), axis=1) + rng.integers(
        -10, 5, size=(channels, 1))
    x = rng.integers(-15, 40, size=(5, channels))
    # put x exactly on and next to thresholds too
    x[0] = t[:, 0]
    x[1] = t[:, -1] - 1
    x[2] = t[:, levels // 2]
    got = ops.threshold(x, t, a_bits)
    for p in range(x.shape[0]):
        for c in range(channels):
            want = 0
            for k in range(levels):
                if int(x[p, c]) >= int(t[c, k]):
                    want += 1
            assert got[p, c] == want


@PROP
@given(st.lists(st.integers(-(2**40), 2**40), min_size=1, max_size=20), st.integers(0, 12),
       st.integers(1, 6))
def test_log2_matches_bitlen(xs, s, a_bits):
    got = ops.log2_act(arr(xs), s, a_bits).tolist()
    assert got == [ref_log2(x, s, a_bits) for x in xs]


@PROP
@given(st.lists(st.integers(0, 2**63 - 1), min_size=1, max_size=20))
def test_bit_length_full_int64(xs):
    assert ops.bit_length(arr(xs)).tolist() == [ref_bitlen(x) for x in xs]


@PROP
@given(st.lists(st.integers(-(2**40), 2**40), min_size=1, max_size=20), st.integers(0, 20),
       st.integers(1, 8))
def test_shift_matches_division(xs, s, a_bits):
    got = ops.shift_quant(arr(xs), s, a_bits).tolist()
    assert got == [min(max(x, 0) // 2**s, 2**a_bits - 1) for x in xs]


@PROP
@given(st.integers(2, 20), st.integers(-15, 15), st.integers(-15, 15), st.data())
def test_residual_add_matches_reference(out_bits, sm, sr, data):
    xs = st.integers(-(2**20), 2**20)
    m = data.draw(st.lists(xs, min_size=1, max_size=10))
    r = data.draw(st.lists(xs, min_size=len(m), max_size=len(m)))
    got = ops.residual_add(arr(m), arr(r), out_bits, shifts=(sm, sr)).tolist()
    assert got == [ref_sat(ref_align(a, sm) + ref_align(b, sr), out_bits) for a, b in zip(m, r)]


@PROP
@given(st.integers(1, 7), st.integers(1, 7), st.integers(1, 3), st.integers(1, 3),
       st.integers(1, 3), st.integers(0, 2**32 - 1))
def test_maxpool_matches_loops(h, wd, c, k, stride, seed):
    if k > min(h, wd):
        return
    a = np.random.default_rng(seed).integers(-50, 50, size=(h, wd, c))
    got = ops.maxpool2d(a, k, stride)
    ho, wo = (h - k) // stride + 1, (wd - k) // stride + 1
    assert got.shape == (ho, wo, c)
    for oy in range(ho):
        for ox in range(wo):
            for ch in range(c):
                best = None
                for ky in range(k):
                    for kx in range(k):
                        v = int(a[oy * stride + ky, ox * stride + kx, ch])
                        best = v if best is None or v > best else best
                assert got[oy, ox, ch] == best


@PROP
@given(st.lists(st.integers(-3, 3), min_size=1, max_size=12))
def test_argmax_first_of_maxima(v):
    best = 0
    for i in range(1, len(v)):
        if v[i] > v[best]:
            best = i
    assert ops.argmax(arr(v)) == best


@PROP
@given(st.integers(0, 2**62))
def test_signed_width_is_minimal(b):
    n = 1
    while not (-(2 ** (n - 1)) <= -b and b <= 2 ** (n - 1) - 1):
        n += 1
    assert ops.signed_width(b) == n


@PROP
@given(st.integers(1, 5000), st.integers(1, 8), st.integers(2, 8), st.integers(1, 8))
def test_worst_case_shift_reference(n, a_in, w_bits, a_bits):
    bound = n * (2**a_in - 1) * (2 ** (w_bits - 1) - 1)
    c = 0
    while 2**c < bound:  # c = ceil(log2(bound))
        c += 1
    s = ops.worst_case_shift(n, a_in, w_bits, a_bits)
    assert s == max(0, c - a_bits)
    # the worst case never needs more than the top code + 1 before clamping
    assert bound >> s <= 2**a_bits


@PROP
@given(st.integers(1, 300), st.integers(1, 8), st.integers(2, 8), st.integers(0, 500))
def test_acc_width_holds_extremes(n, a_bits, w_bits, bias_bound):
    width = ops.acc_width(n, a_bits, w_bits, bias_bound)
    a = np.full(n, 2**a_bits - 1)
    wm = 2 ** (w_bits - 1) - 1
    hi = ops.dense(a, np.full((1, n), wm), arr([bias_bound]), a_bits, w_bits, width)
    lo = ops.dense(a, np.full((1, n), -wm), arr([-bias_bound]), a_bits, w_bits, width)
    assert hi[0] == -lo[0] == n * (2**a_bits - 1) * wm + bias_bound
    # and the width is the smallest one that holds both extremes
    top = int(hi[0])
    assert not (-(2 ** (width - 2)) <= -top and top <= 2 ** (width - 2) - 1)


# --------------------------------------------------------------------------------------------
# Requantizer (docs/arithmetic.md section 10)
# --------------------------------------------------------------------------------------------


def ref_requant(x: int, m: int, n: int, a_bits: int) -> int:
    """Independent oracle: ``clamp(floor(x M / 2^n + 1/2), 0, 2^A - 1)`` in exact rationals."""
    from fractions import Fraction

    return min(max(math.floor(Fraction(x * m, 2**n) + Fraction(1, 2)), 0), 2**a_bits - 1)


def rq(xs, m, n, a_bits, **kw):
    return ops.requantize(arr(xs).reshape(-1, 1), arr([m]), arr([n]), a_bits, **kw).ravel()


def test_requantize_hand_example():
    # A = 2, M = 3, n = 2: x M + 2 = -13, -1, 2, 5, 8, 11, 14, 17; >> 2 = -4, -1, 0, 1, 2, 2, 3, 4
    assert rq([-5, -1, 0, 1, 2, 3, 4, 5], 3, 2, 2).tolist() == [0, 0, 0, 1, 2, 2, 3, 3]


def test_requantize_half_up_not_half_even():
    # 0.5, 1.5, 2.5, 3.5 -> 1, 2, 3, 4 (half to even would give 0, 2, 2, 4)
    assert rq([1, 3, 5, 7], 1, 1, 3).tolist() == [1, 2, 3, 4]
    # just below / at each half: M = 5, n = 3 (0.625 per step): x = 4 -> 2.5 -> 3, x = 3 -> 1.875
    assert rq([3, 4, 12], 5, 3, 3).tolist() == [2, 3, 7]


def test_requantize_shift_zero_no_rounding():
    assert rq([-3, 0, 1, 2, 7], 2, 0, 2).tolist() == [0, 0, 2, 3, 3]
    assert rq([5], 1, 0, 4).tolist() == [5]


def test_requantize_per_channel():
    x = arr([[10, 10, 10], [-10, 3, 100]])
    y = ops.requantize(x, arr([1, 8, 0]), arr([2, 4, 0]), 4)
    # ch0: (10 + 2) >> 2 = 3, ch1: (80 + 8) >> 4 = 5, ch2: M = 0 -> 0; row 2: 0, (24+8)>>4 = 2, 0
    assert y.tolist() == [[3, 5, 0], [0, 2, 0]]


@pytest.mark.parametrize("n", [1, 2, 5, 13])
@pytest.mark.parametrize("m", [1, 3, 7, 255])
def test_requantize_every_rounding_edge(m, n):
    """Around every point where x M / 2^n crosses k + 1/2 (the code changes), for k up to the
    top code and past it: below the edge the code is at most k, at the edge at least k + 1
    (more when the rate M / 2^n exceeds 1), clamped to the top code."""
    a_bits = 3
    for k in range(0, 2**a_bits + 1):
        # smallest x with x M >= (k + 1/2) 2^n
        edge = -(-((2 * k + 1) * 2 ** (n - 1)) // m)
        xs = [edge - 1, edge, edge + 1]
        got = rq(xs, m, n, a_bits).tolist()
        assert got == [ref_requant(x, m, n, a_bits) for x in xs]
        assert got[1] >= min(k + 1, 2**a_bits - 1)
        assert got[0] <= k


def test_requantize_saturation_both_ends():
    lo, hi = -(2**15), 2**15 - 1
    assert rq([lo, -1, hi], 2**16 - 1, 0, 4, x_bits=16, m_bits=16).tolist() == [0, 0, 15]
    assert rq([lo, hi], 1, 62, 4, x_bits=16, m_bits=1).tolist() == [0, 0]


@pytest.mark.parametrize("kwargs,msg", [
    (dict(m=[-1]), "m: multiplier -1 of channel 0 is negative"),
    (dict(m=[256], m_bits=8), "m: value 256 at index (0,) is outside the 8-bit unsigned"),
    (dict(n=[64], n_bits=6), "n: value 64"),
    (dict(n=[8], n_bits=3), "n: value 8 at index (0,) is outside the 3-bit shift range"),
    (dict(n=[-1]), "n: value -1"),
    (dict(m_bits=33), "m_bits: 33 is out of range"),
    (dict(n_bits=7), "n_bits: 7 is out of range"),
    (dict(x_bits=50, m_bits=16), "m_bits: 16 with a 50-bit x needs a 66-bit product"),
    (dict(m=[1, 2]), "m: shape (2,) does not match (1,)"),
    (dict(m=np.array([1.0])), "m: expected an integer array"),
])
def test_requantize_refuses_bad_fields(kwargs, msg):
    args = dict(m=[1], n=[0], m_bits=16, n_bits=6, x_bits=None)
    args.update(kwargs)
    with pytest.raises(ValueError, match=re.escape(msg)):
        ops.requantize(arr([[3]]), np.asarray(args["m"]), np.asarray(args["n"]), 4,
                       x_bits=args["x_bits"], m_bits=args["m_bits"], n_bits=args["n_bits"])


@PROP
@given(st.lists(st.integers(-(2**30), 2**30 - 1), min_size=1, max_size=20),
       st.integers(0, 2**16 - 1), st.integers(0, 47), st.integers(1, 8))
def test_requantize_matches_fractions(xs, m, n, a_bits):
    got = rq(xs, m, n, a_bits, x_bits=31, m_bits=16).tolist()
    assert got == [ref_requant(x, m, n, a_bits) for x in xs]


@PROP
@given(st.integers(2, 40), st.integers(1, 20), st.integers(0, 62), st.data())
def test_requantize_full_width_extremes(x_bits, m_bits, n, data):
    """Largest products and shifts the widths allow (x_bits + m_bits <= 62)."""
    m_bits = min(m_bits, 62 - x_bits)
    xs = [-(2 ** (x_bits - 1)), 2 ** (x_bits - 1) - 1,
          data.draw(st.integers(-(2 ** (x_bits - 1)), 2 ** (x_bits - 1) - 1))]
    m = data.draw(st.sampled_from([0, 1, 2**m_bits - 1]))
    got = rq(xs, m, n, 8, x_bits=x_bits, m_bits=m_bits).tolist()
    assert got == [ref_requant(x, m, n, 8) for x in xs]


def test_requant_words_layout():
    # lanes 2, m_bits 4, n_bits 2: channel 0 (M 3, n 1) = 0b01_0011, channel 1 (M 15, n 2) at
    # bit 6 = 0b10_1111; channel 2 alone in group 1, its padding lane 0
    w = ops.requant_words(arr([3, 15, 1]), arr([1, 2, 3]), 2, 4, 2)
    assert w == [0b10_1111_01_0011, 0b11_0001]
    with pytest.raises(ValueError, match="m: multiplier -2 of channel 1 is negative"):
        ops.requant_words(arr([3, -2]), arr([1, 2]), 2, 4, 2)


@pytest.mark.parametrize("a_bits,m_bits,n_bits,x_bits", [(1, 3, 3, 6), (2, 4, 3, 7), (3, 5, 4, 8),
                                                          (4, 3, 3, 9)])
def test_requant_thresholds_equal_requantize_everywhere(a_bits, m_bits, n_bits, x_bits):
    """Exhaustive over every x of the width and every (M, n) pair: the MultiThreshold form of
    the requantizer gives the same code for every x <= top (top = the largest x)."""
    top = 2 ** (x_bits - 1) - 1
    xs = np.arange(-(2 ** (x_bits - 1)), top + 1).reshape(-1, 1)
    pairs = [(m, n) for m in range(2**m_bits) for n in range(2**n_bits)]
    m = arr([p[0] for p in pairs])
    n = arr([p[1] for p in pairs])
    t = ops.requant_thresholds(m, n, a_bits, top, m_bits, n_bits)
    assert t.min() >= 1 and t.max() <= top + 1
    want = ops.requantize(np.repeat(xs, len(pairs), axis=1), m, n, a_bits, x_bits + 1, m_bits,
                          n_bits)
    got = ops.threshold(np.repeat(xs, len(pairs), axis=1), t, a_bits)
    assert np.array_equal(got, want)


def test_requant_thresholds_hand_example():
    # A = 2, M = 3, n = 2 (docs example): code k needs 3 x + 2 >= 4 k: x >= 1, 2, ceil(10/3) = 4;
    # top = 2 caps them at 3 (never passed); M = 0: every threshold at top + 1
    assert ops.requant_thresholds(arr([3]), arr([2]), 2, 100).tolist() == [[1, 2, 4]]
    assert ops.requant_thresholds(arr([3]), arr([2]), 2, 2).tolist() == [[1, 2, 3]]
    assert ops.requant_thresholds(arr([0]), arr([5]), 2, 9).tolist() == [[10, 10, 10]]
