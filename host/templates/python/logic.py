"""The check's logic apart from any I/O, so `python3 -m unittest` tests it natively."""
from typing import Tuple


def verdict(url: str, status: int, expected: int) -> Tuple[bool, str]:
    """Whether `status` is healthy, and the message saying so."""
    if status == expected:
        return True, f"HTTP {status} from {url}"
    return False, f"HTTP {status} from {url} (expected {expected})"
