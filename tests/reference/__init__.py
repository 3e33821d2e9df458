"""Hand-written NumPy references (forward and backward) used by the tests; not part of the package."""
