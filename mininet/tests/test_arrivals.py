"""Arrival schedules and the bound when hosts arrive over time."""

import unittest

from study import arrivals, bounds

F = 80e6  # bits
U = 10e6  # bits per second


class Parse(unittest.TestCase):
    def test_the_three_kinds(self):
        self.assertEqual(arrivals.parse("all"), arrivals.Arrivals("all"))
        self.assertEqual(arrivals.parse(None), arrivals.Arrivals("all"))
        self.assertEqual(arrivals.parse("stagger:5"), arrivals.Arrivals("stagger", 5.0))
        self.assertEqual(arrivals.parse(" Poisson : 2.5 "), arrivals.Arrivals("poisson", 2.5))
        self.assertEqual(arrivals.parse("stagger:5").kind_text(), "stagger:5")

    def test_bad_schedules_say_what_is_wrong(self):
        for text in ("later", "stagger", "stagger:0", "stagger:-1", "poisson:x", "all:3", "stagger:99999"):
            with self.assertRaises(ValueError, msg=text):
                arrivals.parse(text)


class Offsets(unittest.TestCase):
    def test_stagger_spaces_hosts_evenly_from_zero(self):
        self.assertEqual(arrivals.offsets(arrivals.parse("stagger:2"), 4), [0.0, 2.0, 4.0, 6.0])
        self.assertEqual(arrivals.offsets(arrivals.parse("all"), 3), [0.0, 0.0, 0.0])

    def test_poisson_repeats_with_its_seed_and_has_about_its_mean_gap(self):
        schedule = arrivals.parse("poisson:3")
        first = arrivals.offsets(schedule, 2000, seed=7)
        self.assertEqual(first, arrivals.offsets(schedule, 2000, seed=7))
        self.assertNotEqual(first, arrivals.offsets(schedule, 2000, seed=8))
        self.assertEqual(first[0], 0.0)
        self.assertTrue(all(b >= a for a, b in zip(first, first[1:])))
        self.assertAlmostEqual(first[-1] / 1999, 3.0, delta=0.3)


class Bound(unittest.TestCase):
    def test_all_at_once_is_the_fluid_bound(self):
        for mode in ("cs", "p2p"):
            got = arrivals.bound(mode, F, U, [U] * 5, [U] * 5, [0.0] * 5)
            self.assertAlmostEqual(got, bounds.bound(mode, 5, F, U, U, U), places=6)

    def test_the_last_arrival_must_still_download_the_file(self):
        # Fast server and uplinks: the host arriving at 100 s is the limit.
        got = arrivals.bound("p2p", F, 1000 * U, [1000 * U] * 3, [U, U, U], [0.0, 1.0, 100.0])
        self.assertAlmostEqual(got, 100.0 + F / U)

    def test_client_server_sends_later_copies_only_after_their_hosts_arrive(self):
        # Three hosts at 0, 0 and 10 s, fast downloads: the server sends one
        # copy in 8 s; the third copy cannot leave before 10 s.
        got = arrivals.bound("cs", F, U, [U] * 3, [1000 * U] * 3, [0.0, 0.0, 10.0])
        self.assertAlmostEqual(got, max(3 * F / U, 10.0 + F / U))

    def test_hosts_upload_only_after_they_arrive(self):
        # Three hosts uploading at U/10, the third from 6 s, fast downloads:
        # U*T + 0.1U*T + 0.1U*T + 0.1U*(T-6) >= 3F  ->  T = (3F/U + 0.6) / 1.3,
        # later than if all had come at once (3F/U / 1.3).
        got = arrivals.bound("p2p", F, U, [U / 10] * 3, [1000 * U] * 3, [0.0, 0.0, 6.0])
        self.assertAlmostEqual(got, (3 * F / U + 0.6) / 1.3, places=6)
        self.assertGreater(got, arrivals.bound("p2p", F, U, [U / 10] * 3, [1000 * U] * 3, [0.0] * 3) + 0.4)


if __name__ == "__main__":
    unittest.main()
