"""The fluid-model bounds, against hand-worked figures."""

import unittest

from study import bounds

MIB = 1 << 20
F = 100 * MIB * 8  # 100 MiB in bits
R = 100e6  # 100 Mbit/s


class ClientServer(unittest.TestCase):
    def test_the_server_uplink_binds_from_two_hosts(self):
        # N F / u_s = 6 * 838,860,800 / 1e8 = 50.33 s
        self.assertAlmostEqual(bounds.client_server(6, F, R, R), 50.331648)

    def test_one_host_is_limited_by_the_slower_link(self):
        self.assertAlmostEqual(bounds.client_server(1, F, R, R / 2), F / (R / 2))
        self.assertAlmostEqual(bounds.client_server(1, F, R / 4, R), F / (R / 4))

    def test_grows_linearly_with_n(self):
        times = [bounds.client_server(n, F, R, R) for n in (1, 2, 4, 8)]
        self.assertEqual([t / times[0] for t in times], [1, 2, 4, 8])


class PeerToPeer(unittest.TestCase):
    def test_equal_links_give_f_over_u_for_every_n(self):
        # N F / (u_s + N u) < F / u for every N when all rates are equal.
        for n in (1, 2, 4, 6, 100):
            self.assertAlmostEqual(bounds.peer_to_peer(n, F, R, R, R), F / R)

    def test_weak_peer_uplinks_make_the_aggregate_term_bind(self):
        # u_s = 100, u_i = 10 Mbit/s, N = 20: 20 F / (100 + 200) Mbit/s
        self.assertAlmostEqual(bounds.peer_to_peer(20, F, R, R, R / 10), 20 * F / (3 * R))

    def test_a_list_of_peer_uplinks_is_summed(self):
        self.assertAlmostEqual(
            bounds.peer_to_peer(3, F, R, 10 * R, [R / 10, R / 10, R / 10]),
            max(F / R, F / (10 * R), 3 * F / (1.3 * R)),
        )

    def test_never_above_client_server(self):
        for n in range(1, 30):
            self.assertLessEqual(bounds.peer_to_peer(n, F, R, R, R / 3), bounds.client_server(n, F, R, R) + 1e-9)

    def test_by_mode(self):
        self.assertEqual(bounds.bound("cs", 4, F, R, R, R), bounds.client_server(4, F, R, R))
        self.assertEqual(bounds.bound("p2p", 4, F, R, R, R), bounds.peer_to_peer(4, F, R, R, R))
        with self.assertRaises(ValueError):
            bounds.bound("multicast", 4, F, R, R, R)


class Refusals(unittest.TestCase):
    def test_nonsense_is_refused(self):
        for call in (
            lambda: bounds.client_server(0, F, R, R),
            lambda: bounds.client_server(1, 0, R, R),
            lambda: bounds.client_server(1, F, 0, R),
            lambda: bounds.peer_to_peer(2, F, R, R, [R]),
            lambda: bounds.peer_to_peer(1, F, R, R, -1.0),
        ):
            with self.assertRaises(ValueError):
                call()


if __name__ == "__main__":
    unittest.main()
