"""fesr: numerical homogenization by continuous super-resolution (NH-CSR) and the methods it is compared with."""

__version__ = "0.1.0"
