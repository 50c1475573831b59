"""The machine-fidelity check: idle shares from /proc/stat samples, the
per-run verdict, and how the tables and summary.json report it."""

import os
import tempfile
import unittest

from study import fidelity, results
from study.trial import HostResult, TrialResult


class IdleShares(unittest.TestCase):
    def test_each_interval_is_its_idle_over_its_total(self):
        # (idle, total) jiffies: 80 of 100 idle, then 20 of 100, then 50 of 200.
        samples = [(1000, 5000, 0), (1080, 5100, 10), (1100, 5200, 10), (1200, 5400, 30)]
        self.assertEqual(fidelity.idle_shares(samples), [0.8, 0.2, 0.5])
        self.assertEqual(fidelity.steal_shares(samples), [0.1, 0.0, 0.1])

    def test_intervals_without_time_or_going_back_are_skipped(self):
        self.assertEqual(fidelity.idle_shares([(10, 100, 0), (10, 100, 0), (5, 200, 0), (15, 300, 0)]), [0.1])
        self.assertEqual(fidelity.idle_shares([(10, 100, 0)]), [])

    def test_a_run_meets_the_check_only_if_no_second_falls_below_35_percent(self):
        met = fidelity.summarize([0.9, 0.35, 0.6])
        self.assertEqual(met, {"cpu_idle_min": 0.35, "cpu_seconds_below": 0, "cpu_seconds": 3, "fidelity_met": True,
                               "cpu_steal_max": None})
        missed = fidelity.summarize([0.9, 0.34, 0.1, 0.6])
        self.assertEqual((missed["cpu_seconds_below"], missed["fidelity_met"]), (2, False))
        self.assertAlmostEqual(missed["cpu_idle_min"], 0.1)
        self.assertIsNone(fidelity.summarize([])["fidelity_met"], "no sample, no claim")

    def test_the_counters_are_read_from_the_cpu_line(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "stat")
            with open(path, "w") as stat:
                # user nice system idle iowait irq softirq steal guest guest_nice
                stat.write("cpu  100 0 50 800 30 0 15 5 7 0\ncpu0 50 0 25 400 15 0 10 0 7 0\n")
            self.assertEqual(fidelity.read_counters(path), (830, 1000, 5))
            self.assertIsNone(fidelity.read_counters(os.path.join(tmp, "missing")))

    def test_the_sampler_summarizes_what_it_read(self):
        # (idle, total, steal): the second interval is 90% busy, 40% of it stolen.
        readings = iter([(0, 0, 0), (50, 100, 0), (60, 200, 40), (160, 300, 40)])
        sampler = fidelity.Sampler(period=0.01, read=lambda: next(readings, None))
        sampler.start()
        while len(sampler.samples) < 3:
            pass
        summary = sampler.stop()
        self.assertEqual(summary["cpu_seconds"], 3)
        self.assertEqual(summary["cpu_seconds_below"], 1)
        self.assertAlmostEqual(summary["cpu_idle_min"], 0.1)
        self.assertFalse(summary["fidelity_met"])
        self.assertAlmostEqual(summary["cpu_steal_max"], 0.4)
        series = sampler.series()
        self.assertEqual([round(share, 2) for _, share, _ in series], [0.5, 0.1, 1.0])
        self.assertEqual([round(steal, 2) for _, _, steal in series], [0.0, 0.4, 0.0])
        self.assertEqual([at for at, _, _ in series], sorted(at for at, _, _ in series))
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "cpu-idle.csv")
            fidelity.write_series(path, series)
            with open(path) as written:
                self.assertEqual(written.read().splitlines()[0:2],
                                 ["seconds,idle,steal", f"{series[0][0]:.1f},0.500,0.000"])


def trial(run, cpu):
    hosts = [HostResult("h1", True, 1.0, 1.0, 0.0, 1, True)]
    result = TrialResult("p2p", 1, run, hosts, 1, 1.0)
    result.cpu = cpu
    return result


class Reported(unittest.TestCase):
    def setUp(self):
        self.rows = [
            results.run_row("local", trial(1, fidelity.summarize([0.9, 0.8]))),
            results.run_row("local", trial(2, fidelity.summarize([0.9, 0.2, 0.1], steal=[0.0, 0.25, 0.3]))),
            results.run_row("local", trial(3, {})),  # not sampled
        ]

    def test_runs_csv_keeps_the_check(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "runs.csv")
            results.write_csv(path, self.rows, results.RUN_COLUMNS)
            back = results.read_csv(path)
        self.assertEqual([r["fidelity_met"] for r in back], [True, False, None])
        self.assertEqual(back[1]["cpu_seconds_below"], 2)
        self.assertAlmostEqual(back[1]["cpu_idle_min"], 0.1)
        self.assertAlmostEqual(back[1]["cpu_steal_max"], 0.3)
        self.assertIsNone(back[0]["cpu_steal_max"])

    def test_summary_counts_the_runs_that_met_it(self):
        (record,) = results.summarize(self.rows, ["p2p"], [1], 8.0, 1.0)
        self.assertEqual((record["fidelity_runs_met"], record["fidelity_runs_checked"]), (1, 2))
        self.assertIs(record["fidelity_met"], False)
        self.assertAlmostEqual(record["cpu_idle_min"], 0.1)
        self.assertAlmostEqual(record["cpu_steal_max"], 0.3)

    def test_the_tables_say_it_per_run_and_per_n(self):
        records = results.summarize(self.rows, ["p2p"], [1], 8.0, 1.0)
        self.assertIn("| 1/2 |", results.per_n_table(records))
        table = results.fidelity_table(self.rows)
        self.assertIn("| peer-to-peer | 1 | 2 | 10 | 2 of 3 | **no** | 30 |", table)
        self.assertIn("| peer-to-peer | 1 | 1 | 80 | 0 of 2 | yes | — |", table)
        self.assertIn("| peer-to-peer | 1 | 3 | — | — | — | — |", table)
        self.assertIn("## Machine fidelity", results.markdown([], [], records, 8.0, self.rows))

    def test_runs_from_before_the_steal_column_keep_their_table(self):
        rows = [dict(r, cpu_steal_max=None) for r in self.rows]
        table = results.fidelity_table(rows)
        self.assertNotIn("most stolen", table)
        self.assertIn("| peer-to-peer | 1 | 2 | 10 | 2 of 3 | **no** |\n", table + "\n")
        records = results.summarize(rows, ["p2p"], [1], 8.0, 1.0)
        self.assertNotIn("Most stolen", results.markdown([], [], records, 8.0, rows))
        self.assertNotIn("cpu_steal_max", records[0])


if __name__ == "__main__":
    unittest.main()
