"""Models shipped with pydiasca: each subpackage is one model (soda, phold, ...)."""
