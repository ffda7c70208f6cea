# Hand-written stub for the Cython kernel; kept honest by `python -m mypy.stubtest ipsecstats._fast`.
import numpy as np
import numpy.typing as npt

STREAMING_THRESHOLD: int

def vector_path() -> str: ...
def _set_vector_path(avx2: bool) -> None: ...
def delta_rows(
    prev: npt.NDArray[np.uint8],
    cur: npt.NDArray[np.uint8],
    counters: npt.NDArray[np.uint8],
    policy: str,
    out: npt.NDArray[np.uint8],
    resets: npt.NDArray[np.uint8] | None = None,
) -> int: ...
