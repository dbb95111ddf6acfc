"""Data files shipped inside the package: digits.npz (scikit-learn's digits, read by edgeq.data.datasets)."""
