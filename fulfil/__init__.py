"""fulfil: Canada Post labels and Best Buy tracking for marketplace orders, exactly once."""

__version__ = "0.1.0"
