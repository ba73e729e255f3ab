"""The package version, written into every file ppddpm saves and into the engines' cache key."""
__version__ = "0.1.0"
