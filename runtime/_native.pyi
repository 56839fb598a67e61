# Types of the compiled runtime (runtime/_native.c).
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

def word_tokens(prepared: str, /) -> str: ...

class Scorer:
    def __init__(
        self,
        words: Sequence[str],
        unigram_column: npt.NDArray[np.int64],
        bigram_keys: npt.NDArray[np.int64],
        bigram_columns: npt.NDArray[np.int64],
        weighted_idf: npt.NDArray[np.float64],
        idf_squared: npt.NDArray[np.float64],
    ) -> None: ...
    def sums(self, normalized: str, tf: npt.NDArray[np.float64], /) -> tuple[float, float, int] | None: ...
