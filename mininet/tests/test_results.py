"""The CSV round trip, the summary records and the Markdown tables."""

import json
import os
import tempfile
import unittest

from study import config, results
from study.trial import HostResult, TrialResult

MIB = 1 << 20
F_BITS = 16 * MIB * 8.0
R = 100e6


def trial(mode, n, run, seconds, server_bytes, verified=True, missing=()):
    hosts = []
    for i, s in enumerate(seconds, start=1):
        done = f"h{i}" not in missing
        hosts.append(HostResult(f"h{i}", done, s if done else None, s if done else None, 0.0,
                                16 * MIB if done else None, verified and done,
                                error="" if done else "timed out"))
    bound = (n * F_BITS / R) if mode == "cs" else F_BITS / R
    return TrialResult(mode, n, run, hosts, server_bytes, bound)


class Rows(unittest.TestCase):
    def setUp(self):
        self.trials = [
            trial("cs", 2, 1, [2.6, 2.8], 2 * 16 * MIB),
            trial("cs", 2, 2, [2.7, 3.0], 2 * 16 * MIB),
            trial("cs", 2, 3, [2.7, 2.9], 2 * 16 * MIB),
            trial("p2p", 2, 1, [1.5, 1.6], 20 * MIB),
            trial("p2p", 2, 2, [1.4, 1.7], 18 * MIB),
            trial("p2p", 2, 3, [1.5, 1.5], 16 * MIB),
        ]
        self.host_rows = [r for t in self.trials for r in results.host_rows("local", t)]
        self.run_rows = [results.run_row("local", t) for t in self.trials]

    def test_overall_is_the_last_host(self):
        self.assertEqual([r["overall_seconds"] for r in self.run_rows], [2.8, 3.0, 2.9, 1.6, 1.7, 1.5])

    def test_csv_round_trip_keeps_types(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "hosts.csv")
            results.write_csv(path, self.host_rows, results.HOST_COLUMNS)
            back = results.read_csv(path)
        self.assertEqual(len(back), 12)
        self.assertEqual(back[0]["seconds"], 2.6)
        self.assertIs(back[0]["verified"], True)
        self.assertEqual(back[0]["n"], 2)
        self.assertIsNone(back[0]["peers"])

    def test_summary_takes_the_median_and_the_bound(self):
        records = results.summarize(self.run_rows, ["cs", "p2p"], [2], F_BITS, R)
        cs, p2p = records
        self.assertEqual((cs["mode"], cs["n"], cs["runs"]), ("cs", 2, 3))
        self.assertAlmostEqual(cs["median_seconds"], 2.9)
        self.assertAlmostEqual(cs["bound_seconds"], 2 * F_BITS / R)
        self.assertAlmostEqual(cs["ratio"], 2.9 / (2 * F_BITS / R))
        self.assertTrue(cs["verified"] and cs["complete"])
        self.assertAlmostEqual(cs["server_copies"], 2.0)
        self.assertAlmostEqual(p2p["median_seconds"], 1.6)
        self.assertAlmostEqual(p2p["server_copies"], 18 / 16)
        json.dumps(records)  # serializable as is

    def test_an_unmeasured_pair_is_still_a_record(self):
        records = results.summarize(self.run_rows, ["cs", "p2p"], [2, 4], F_BITS, R)
        missing = [r for r in records if r["n"] == 4]
        self.assertEqual(len(missing), 2)
        self.assertTrue(all(r["median_seconds"] is None and not r["complete"] and not r["verified"] for r in missing))

    def test_a_failed_host_fails_its_run(self):
        bad = trial("p2p", 2, 4, [1.5, 9.9], 16 * MIB, missing=("h2",))
        row = results.run_row("local", bad)
        self.assertFalse(row["complete"])
        self.assertIsNone(row["overall_seconds"])
        self.assertIn("h2: timed out", row["error"])
        records = results.summarize(self.run_rows + [row], ["p2p"], [2], F_BITS, R)
        self.assertFalse(records[0]["complete"])
        self.assertFalse(records[0]["verified"])
        self.assertEqual(records[0]["complete_runs"], 3)

    def test_a_bad_copy_is_not_verified(self):
        bad = trial("cs", 1, 1, [1.4], 16 * MIB, verified=False)
        self.assertTrue(bad.complete)
        self.assertFalse(bad.verified)


class Tables(unittest.TestCase):
    def setUp(self):
        Rows.setUp(self)
        self.records = results.summarize(self.run_rows, ["cs", "p2p"], [2], F_BITS, R)

    def test_per_n_table(self):
        table = results.per_n_table(self.records).splitlines()
        self.assertEqual(len(table), 3)
        self.assertTrue(table[0].startswith("| N | client-server (s) | peer-to-peer (s) | CS bound (s) | P2P bound (s)"))
        cells = [c.strip() for c in table[2].strip("|").split("|")]
        # N, cs, p2p, bounds, ratios, speed-up 2.9 / 1.6, server copies
        self.assertEqual(cells[:3], ["2", "2.90", "1.60"])
        self.assertEqual(cells[3:5], [f"{2 * F_BITS / R:.2f}", f"{F_BITS / R:.2f}"])
        self.assertEqual(cells[7], f"{2.9 / 1.6:.2f}")
        self.assertEqual(cells[8:], ["2.00", "1.12"])

    def test_per_host_table(self):
        table = results.per_host_table(self.host_rows, "cs", 2, F_BITS).splitlines()
        self.assertEqual(table[0], "| host | run 1 (s) | run 2 (s) | run 3 (s) | average (s) | average speed (Mbit/s) |")
        self.assertEqual(table[2], f"| h1 | 2.60 | 2.70 | 2.70 | 2.67 | {F_BITS / (8 / 3) / 1e6:.1f} |")
        self.assertTrue(table[4].startswith("| **overall (last host)** | 2.80 | 3.00 | 2.90 | 2.90 |"))

    def test_failures_show_in_the_host_table(self):
        rows = self.host_rows + results.host_rows("local", trial("cs", 2, 4, [2.0, 5.0], None, missing=("h2",)))
        table = results.per_host_table(rows, "cs", 2, F_BITS)
        self.assertIn("| h2 | 2.80 | 3.00 | 2.90 | — |", table)
        self.assertIn("| **overall (last host)** | 2.80 | 3.00 | 2.90 | — |", table)

    def test_peer_to_peer_shows_what_each_host_received(self):
        t = trial("p2p", 2, 1, [1.5, 1.6], 16 * MIB)
        t.hosts[0].downloaded, t.hosts[1].downloaded = 16 * MIB, 24 * MIB
        table = results.per_host_table(results.host_rows("local", t), "p2p", 2, F_BITS).splitlines()
        self.assertTrue(table[0].endswith("| received (× F) |"))
        self.assertTrue(table[2].endswith("| 1.00 |"))
        self.assertTrue(table[3].endswith("| 1.50 |"))
        self.assertNotIn("received", results.per_host_table(self.host_rows, "cs", 2, F_BITS))

    def test_markdown_has_every_table(self):
        text = results.markdown(["- a line"], self.host_rows, self.records, F_BITS)
        self.assertIn("## Overall time per N", text)
        self.assertIn("### client-server, N = 2", text)
        self.assertIn("### peer-to-peer, N = 2", text)


class Config(unittest.TestCase):
    def test_sizes(self):
        self.assertEqual(config.parse_size("100M"), 100 * MIB)
        self.assertEqual(config.parse_size("1G"), 1 << 30)
        self.assertEqual(config.parse_size("16MiB"), 16 * MIB)
        self.assertEqual(config.parse_size("4096"), 4096)
        for bad in ("", "-1", "1T", "0", "ten"):
            with self.assertRaises(ValueError):
                config.parse_size(bad)
        self.assertEqual(config.format_size(100 * MIB), "100 MiB")
        self.assertEqual(config.format_size(1 << 30), "1 GiB")

    def test_lists(self):
        self.assertEqual(config.parse_peers("6,1, 2,4,2"), [1, 2, 4, 6])
        self.assertEqual(config.parse_modes("p2p,cs"), ["cs", "p2p"])
        for bad in ("0,1", "", "a"):
            with self.assertRaises(ValueError):
                config.parse_peers(bad)
        with self.assertRaises(ValueError):
            config.parse_modes("cs,ftp")

    def test_delay(self):
        self.assertIsNone(config.parse_delay("0"))
        self.assertEqual(config.parse_delay("5ms"), "5ms")
        self.assertEqual(config.parse_delay("5"), "5ms")
        with self.assertRaises(ValueError):
            config.parse_delay("5 parsecs")

    def test_tcp(self):
        # Mininet's hosts run Linux's default unless told; one machine can only share its own.
        self.assertEqual(config.parse_tcp(None, "mininet"), "cubic")
        self.assertEqual(config.parse_tcp(None, "local"), "system")
        self.assertEqual(config.parse_tcp(" BBR ", "mininet"), "bbr")
        self.assertEqual(config.parse_tcp("system", "local"), "system")
        with self.assertRaises(ValueError):
            config.parse_tcp("cubic", "local")
        for bad in ("", "cubic; reboot", "$(id)", "a" * 17, "-x"):
            with self.assertRaises(ValueError):
                config.parse_tcp(bad, "mininet")

    def test_presets_and_overrides(self):
        import argparse

        parser = argparse.ArgumentParser()
        config.add_arguments(parser)
        lab = config.from_arguments(parser.parse_args([]), "local")
        self.assertEqual((lab.size, lab.peers, lab.runs, lab.bw), (1 << 30, [1, 2, 4, 6], 3, 100.0))
        quick = config.from_arguments(parser.parse_args(["--preset", "quick", "--runs", "2"]), "mininet")
        self.assertEqual((quick.size, quick.peers, quick.runs), (16 * MIB, [1, 3], 2))
        self.assertEqual(quick.rate_flag, "100mbit")
        self.assertAlmostEqual(quick.rate_bits, 1e8)
        self.assertEqual((lab.tcp, quick.tcp), ("system", "cubic"))
        self.assertEqual(config.from_arguments(parser.parse_args(["--tcp", "reno"]), "mininet").tcp, "reno")

    def test_rate_flag_for_fractional_rates(self):
        cfg = config.Config("local", MIB, [1], 1, 2.5, ["cs"])
        self.assertEqual(cfg.rate_flag, "2500kbit")
        cfg.bw = 0.0125
        self.assertEqual(cfg.rate_flag, "1562")


if __name__ == "__main__":
    unittest.main()
