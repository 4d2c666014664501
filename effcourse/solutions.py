"""The teachers' solutions to the lessons' exercises (`effcourse.exercises` checks them).

The lessons show each one in a collapsed cell (`exercises.show_solution(name)`); the tests
check every solution passes and a typical wrong answer does not.
"""
import numpy as np


def conv_macs(height, width, in_channels, out_channels, kernel_size):
    """Lesson 01: MACs of a convolution with a height x width output, for one image."""
    return height * width * out_channels * (kernel_size * kernel_size * in_channels)


def conv_parameters(in_channels, out_channels, kernel_size):
    """Lesson 01: parameters of a convolution: its kernel and one bias per output channel."""
    return kernel_size * kernel_size * in_channels * out_channels + out_channels


def magnitude_mask(weights, sparsity):
    """Lesson 02: keep the largest |w|, drop the share `sparsity` of the smallest."""
    drop = int(round(sparsity * weights.size))
    mask = np.ones(weights.size, bool)
    mask[np.argsort(np.abs(weights), axis=None)[:drop]] = False
    return mask.reshape(weights.shape)


def rank_filters_l1(kernel):
    """Lesson 02: the output channels of a Conv2D kernel, weakest L1 norm first."""
    norms = np.abs(kernel).reshape(-1, kernel.shape[-1]).sum(axis=0)
    return np.argsort(norms)


def quantize_per_channel(kernel):
    """Lesson 03: symmetric int8 per output channel: (integers, one scale per channel)."""
    scale = np.abs(kernel).reshape(-1, kernel.shape[-1]).max(axis=0) / 127
    q = np.clip(np.round(kernel / scale), -127, 127).astype(np.int8)
    return q, scale
