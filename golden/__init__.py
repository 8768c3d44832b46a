"""NumPy integer-only golden model: the oracle that ``train/`` and ``rtl/`` are checked against."""
from .ops import *  # noqa: F401,F403
from .ops import __doc__ as _ops_doc  # noqa: F401
