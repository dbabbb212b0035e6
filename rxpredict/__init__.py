"""rxpredict: therapy-response prediction for rheumatoid arthritis, with reasons and uncertainty."""
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("rxpredict")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
