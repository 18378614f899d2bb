"""certstore — city e-certificate repository (电子证照库): the domain core."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("certstore")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"
