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


def two_of_four_mask(weights):
    """Lesson 02: in every group of 4 consecutive input channels (axis -2), keep the 2 largest |w|."""
    groups = np.moveaxis(np.abs(weights), -2, -1)
    groups = groups.reshape(groups.shape[:-1] + (-1, 4))
    rank = np.argsort(np.argsort(groups, axis=-1), axis=-1)  # 0 for the smallest of each group
    keep = (rank >= 2).reshape(groups.shape[:-2] + (-1,))
    return np.moveaxis(keep, -1, -2)


def quantize_per_channel(kernel):
    """Lesson 03: symmetric int8 per output channel: (integers, one scale per channel)."""
    scale = np.abs(kernel).reshape(-1, kernel.shape[-1]).max(axis=0) / 127
    q = np.clip(np.round(kernel / scale), -127, 127).astype(np.int8)
    return q, scale



def smallest_loss_scale(gradient):
    """Lesson 04: the smallest power of two (at least 1) by which every non-zero value of
    `gradient` can be multiplied without float16 rounding it to 0."""
    values = np.abs(np.asarray(gradient, dtype=np.float32))
    scale = 1.0
    while np.any((values * np.float32(scale)).astype(np.float16) == 0):
        scale *= 2
    return scale


def distillation_loss(student_logits, teacher_logits, labels, temperature, alpha):
    """Lesson 05: alpha x the hard-label cross-entropy + (1 - alpha) x T² x KL(teacher || student)
    at temperature T, averaged over the batch (numpy arrays in, a float out)."""
    def softmax(logits, t):
        z = np.asarray(logits, dtype=np.float64) / t
        e = np.exp(z - z.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)

    hard = -np.log(softmax(student_logits, 1.0)[np.arange(len(labels)), labels]).mean()
    p_teacher, p_student = softmax(teacher_logits, temperature), softmax(student_logits, temperature)
    soft = (p_teacher * (np.log(p_teacher) - np.log(p_student))).sum(axis=-1).mean()
    return float(alpha * hard + (1 - alpha) * temperature**2 * soft)


def net_joules_per_inference(start_uj, end_uj, max_range_uj, idle_watts, seconds, inferences):
    """Lesson 07: net joules per inference from two RAPL readings (µJ) that may have wrapped once."""
    counted = end_uj - start_uj if end_uj >= start_uj else end_uj + max_range_uj - start_uj
    return (counted / 1e6 - idle_watts * seconds) / inferences


def energy_verdict(reference, model, margin=0.03):
    """Lesson 07: "less", "more" or "no measurable difference" from per-repeat energies measured
    side by side: every repeat's ratio must lie beyond `margin` of 1, on the same side."""
    ratios = np.asarray(model) / np.asarray(reference)
    if np.all(ratios < 1 - margin):
        return "less"
    if np.all(ratios > 1 + margin):
        return "more"
    return "no measurable difference"


def pareto_front(accuracy, macs):
    """Lesson 06: per model, whether no other model is at least as accurate with at most as many
    MACs and strictly better in one of the two."""
    accuracy, macs = np.asarray(accuracy, dtype=float), np.asarray(macs, dtype=float)
    front = []
    for a, m in zip(accuracy, macs):
        dominated = np.any((accuracy >= a) & (macs <= m) & ((accuracy > a) | (macs < m)))
        front.append(not dominated)
    return np.array(front)


def compressed_bits(kernel, clusters):
    """Lesson 08: the bits of a pruned, clustered kernel stored as a bitmask of its non-zero
    weights, a cluster index per non-zero weight, and the clusters' float32 centroids."""
    kernel = np.asarray(kernel)
    index_bits = int(np.ceil(np.log2(clusters))) if clusters > 1 else 0
    return kernel.size + np.count_nonzero(kernel) * index_bits + 32 * clusters
