"""Native tests: `python3 -m unittest` (build.sh runs them first)."""
import unittest

from logic import verdict


class VerdictTest(unittest.TestCase):
    def test_the_expected_status_is_healthy_any_other_is_not(self):
        self.assertEqual(verdict("u", 200, 200), (True, "HTTP 200 from u"))
        self.assertEqual(verdict("http://x/health", 503, 200),
                         (False, "HTTP 503 from http://x/health (expected 200)"))


if __name__ == "__main__":
    unittest.main()
