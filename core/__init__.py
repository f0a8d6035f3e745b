"""seam: change-data-capture toolkit for moving off a legacy database one capability at a time."""

__version__ = "0.1.0"
