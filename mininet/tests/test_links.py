"""Host link classes: the parser, the hosts' rates, the general bound, and
the flags that emulate them on one machine."""

import unittest

from study import bounds, config, links, local, net

F = 8e6 * 64  # 64 MB in bits


class Parse(unittest.TestCase):
    def test_classes_with_units_shared_or_their_own(self):
        self.assertEqual(links.parse("15x1/16mbit,15x4/32mbit"),
                         [links.LinkClass(15, 1.0, 16.0), links.LinkClass(15, 4.0, 32.0)])
        self.assertEqual(links.parse(" 2 x 512kbit / 2mbit "), [links.LinkClass(2, 0.512, 2.0)])
        self.assertEqual(links.parse("3x10/20"), [links.LinkClass(3, 10.0, 20.0)])
        self.assertEqual(links.parse("1x1gbit/1gbit")[0].label, "1000/1000 Mbit/s")

    def test_bad_classes_say_what_is_wrong(self):
        for text in ("", "15x1", "x1/2mbit", "0x1/2mbit", "2x0/2mbit", "2x1/20000mbit", "2x1/2tbit", "2x1.2.3/4",
                     "1001x1/1mbit"):
            with self.assertRaises(ValueError, msg=text):
                links.parse(text)


class Hosts(unittest.TestCase):
    def test_hosts_take_the_classes_in_order(self):
        classes = links.parse("2x1/16mbit,1x4/32mbit")
        self.assertEqual([c.label for c in links.hosts(classes, 3, 100.0)],
                         ["1/16 Mbit/s", "1/16 Mbit/s", "4/32 Mbit/s"])
        with self.assertRaises(ValueError):
            links.hosts(classes, 4, 100.0)
        self.assertEqual(links.hosts(None, 2, 10.0), [links.LinkClass(1, 10.0, 10.0)] * 2)


class GeneralBound(unittest.TestCase):
    def test_each_term_of_the_bound_can_be_the_largest(self):
        # The example: 15 hosts 1/16 and 15 hosts 4/32, server 10 up.
        hosts = links.hosts(links.parse("15x1/16mbit,15x4/32mbit"), 30, 10.0)
        self.assertAlmostEqual(links.bound("p2p", 30, F, 10.0, hosts), 30 * F / (10e6 + 15e6 + 60e6))
        self.assertAlmostEqual(links.bound("cs", 30, F, 10.0, hosts), 30 * F / 10e6)
        # A slow download dominates: F / d_min.
        slow = links.hosts(links.parse("2x100/1mbit"), 2, 100.0)
        self.assertAlmostEqual(links.bound("p2p", 2, F, 100.0, slow), F / 1e6)
        # A slow server dominates: F / u_s.
        fast = links.hosts(links.parse("4x100/100mbit"), 4, 1.0)
        self.assertAlmostEqual(links.bound("p2p", 4, F, 1.0, fast), F / 1e6)

    def test_equal_classes_give_the_old_bound(self):
        hosts = links.hosts(links.parse("6x100/100mbit"), 6, 100.0)
        for mode in ("cs", "p2p"):
            self.assertAlmostEqual(links.bound(mode, 6, F, 100.0, hosts), bounds.bound(mode, 6, F, 100e6, 100e6, 100e6))

    def test_the_config_sets_n_from_the_classes(self):
        parser = __import__("argparse").ArgumentParser()
        config.add_arguments(parser)
        cfg = config.from_arguments(parser.parse_args(["--links", "2x1/4mbit,1x2/8mbit", "--bw", "10"]), "local")
        self.assertEqual(cfg.peers, [3])
        self.assertAlmostEqual(cfg.bound("p2p", 3), max(cfg.file_bits / 10e6, cfg.file_bits / 4e6,
                                                        3 * cfg.file_bits / (10e6 + 4e6)))
        with self.assertRaises(ValueError):
            config.from_arguments(parser.parse_args(["--links", "2x1/4mbit", "--peers", "3"]), "local")


class MininetRates(unittest.TestCase):
    def test_the_rate_tc_shows_is_read_in_mbit(self):
        shown = "class htb 5:1 root leaf 10: prio 0 rate 16Mbit ceil 16Mbit burst 15Kb cburst 1600b"
        self.assertEqual(net.tc_rate_mbit(shown), 16.0)
        self.assertEqual(net.tc_rate_mbit("class htb 5:1 rate 512Kbit ceil 512Kbit"), 0.512)
        self.assertEqual(net.tc_rate_mbit("class htb 5:1 rate 1Gbit"), 1000.0)
        self.assertIsNone(net.tc_rate_mbit(""))


class QueueNote(unittest.TestCase):
    def test_a_full_queue_in_seconds_at_the_slowest_uplink(self):
        self.assertIn("1000 packets", net.queue_note(1000, 1.0))
        self.assertIn("12.1 s of delay", net.queue_note(1000, 1.0))
        self.assertIn("1211.2 s of delay", net.queue_note(1000, 0.01), "never in exponent form")
        self.assertIn("1.2 s of delay at the slowest uplink here (10 Mbit/s)", net.queue_note(1000, 10.0))
        self.assertIn("0.12 s", net.queue_note(1000, 100.0))


class LocalFlags(unittest.TestCase):
    def test_each_host_gets_its_own_upload_and_download_limits(self):
        classes = links.hosts(links.parse("1x512kbit/2mbit,1x4/32mbit"), 2, 10.0)
        limits = local.RateLimits("10mbit", {"h1": classes[0], "h2": classes[1]})
        h1, h2, h3 = local.LocalHost("h1"), local.LocalHost("h2"), local.LocalHost("h3")
        flag = lambda argv, name: argv[argv.index(name) + 1]  # noqa: E731
        self.assertEqual((flag(limits.download(h1), "--max-upload-rate"), flag(limits.download(h1), "--max-download-rate")),
                         ("512kbit", "2mbit"))
        self.assertEqual(flag(limits.download(h2), "--max-download-rate"), "32mbit")
        self.assertEqual(flag(limits.fetch(h1), "--max-download-rate"), "2mbit")
        self.assertEqual(flag(limits.download(h3), "--max-upload-rate"), "10mbit", "a host without a class has --bw")
        self.assertEqual(flag(limits.seed(), "--max-upload-rate"), "10mbit")


if __name__ == "__main__":
    unittest.main()
