"""Reference maths written out independently of the package (NumPy, float64), shared by tests."""
import numpy as np


def log_softmax(z, T=1.0):
    """log softmax(z / T) along the last axis (one row or a batch of rows)."""
    z = np.asarray(z, dtype=np.float64) / T
    m = z.max(axis=-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=-1, keepdims=True))


def softmax(z, T=1.0):
    """softmax(z / T) along the last axis (one row or a batch of rows)."""
    return np.exp(log_softmax(z, T))


def sphere(z, m):
    """skdtutor.losses.sphere for one row: m (z - mean) / sqrt(var + 1e-7), population variance."""
    z = np.asarray(z, dtype=np.float64)
    return m * (z - z.mean()) / np.sqrt(z.var() + 1e-7)
