"""The parity corpus: every case, in a fixed order (a case's index names its
module in the generated site packages)."""

import corpus_classes  # noqa: F401
import corpus_functions  # noqa: F401
import corpus_objects  # noqa: F401
from case import CASES  # noqa: F401
