"""The Cython kernel-shaped model."""
