"""omnidrill: prove that a backend fails closed, stays observable and comes back."""

__version__ = "0.1.0"
