"""Sunday ML: the machine-learning layer of a work-management platform, built on Ray.

Importing this package does no work: no Ray start, no model load, no file access.
"""

__version__ = "0.1.0"
