"""edgeq: quantize neural networks, validate them, and benchmark them on ARM edge boards."""

__version__ = "0.1.0"
