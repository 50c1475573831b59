"""`experiment.py --report DIR`: rebuilds tables.md, summary.json and
plot.png from a results folder's CSV files alone."""

import contextlib
import csv
import io
import json
import os
import shutil
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import experiment  # noqa: E402

# A committed study (made with today's options), and so today's report format.
COMMITTED = os.path.join(os.path.dirname(HERE), "results", "mininet-100m-superseed")


class Report(unittest.TestCase):
    def setUp(self):
        self.folder = tempfile.mkdtemp(prefix="study-report-")
        self.addCleanup(shutil.rmtree, self.folder, True)
        for name in ("hosts.csv", "runs.csv", "summary.json", "machine.txt"):
            shutil.copy(os.path.join(COMMITTED, name), self.folder)

    def report(self):
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            self.assertEqual(experiment.main(["--report", self.folder]), 0)
        return printed.getvalue()

    def read(self, name):
        with open(os.path.join(self.folder, name), encoding="utf-8") as data:
            return data.read()

    def test_rebuilds_the_committed_tables_and_summary(self):
        printed = self.report()
        with open(os.path.join(COMMITTED, "tables.md"), encoding="utf-8") as committed:
            self.assertEqual(self.read("tables.md"), committed.read())
        with open(os.path.join(COMMITTED, "summary.json"), encoding="utf-8") as committed:
            self.assertEqual(json.loads(self.read("summary.json")), json.load(committed))
        with open(os.path.join(self.folder, "plot.png"), "rb") as png:
            self.assertEqual(png.read(8), b"\x89PNG\r\n\x1a\n")
        self.assertIn("| N | client-server (s) |", printed)

    def test_follows_the_csv_files(self):
        # Every peer-to-peer run with N = 6 took 99 s: the median, the ratio
        # and both tables must say so.
        path = os.path.join(self.folder, "runs.csv")
        with open(path, newline="", encoding="utf-8") as data:
            rows = list(csv.DictReader(data))
            columns = list(rows[0])
        for row in rows:
            if row["mode"] == "p2p" and row["n"] == "6":
                row["overall_seconds"] = "99.0"
        with open(path, "w", newline="", encoding="utf-8") as data:
            writer = csv.DictWriter(data, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
        printed = self.report()
        record = next(r for r in json.loads(self.read("summary.json"))["records"] if (r["mode"], r["n"]) == ("p2p", 6))
        self.assertEqual(record["median_seconds"], 99.0)
        self.assertAlmostEqual(record["ratio"], 99.0 / record["bound_seconds"])
        row6 = next(line for line in self.read("tables.md").splitlines() if line.startswith("| 6 |"))
        self.assertIn("| 99.00 |", row6)
        self.assertIn("| 99.00 |", printed)


if __name__ == "__main__":
    unittest.main()
