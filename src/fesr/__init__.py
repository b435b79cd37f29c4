"""fesr: numerical homogenization by continuous super-resolution (NH-CSR) and its rivals."""

__version__ = "0.1.0"
