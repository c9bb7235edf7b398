"""Reference maths written out independently of the package (NumPy, float64), shared by tests."""
import numpy as np


def softmax(z, T=1.0):
    """softmax(z / T) of one row."""
    z = np.asarray(z, dtype=np.float64) / T
    e = np.exp(z - z.max())
    return e / e.sum()


def sphere(z, m):
    """skdtutor.losses.sphere for one row: m (z - mean) / sqrt(var + 1e-7), population variance."""
    z = np.asarray(z, dtype=np.float64)
    return m * (z - z.mean()) / np.sqrt(z.var() + 1e-7)
