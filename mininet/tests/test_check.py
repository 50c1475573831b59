"""study.check: what CI accepts of a results folder, and the study's claims."""

import contextlib
import io
import json
import os
import shutil
import tempfile
import unittest

from study import check

RESULTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "results")


class Folder(unittest.TestCase):
    """A copy of a committed study (Mininet, super-seeder, 100 MiB, N = 1, 2, 4, 6)."""

    source = "mininet-100m-superseed"

    def setUp(self):
        self.folder = os.path.join(tempfile.mkdtemp(prefix="study-check-"), "results")
        self.addCleanup(shutil.rmtree, os.path.dirname(self.folder), True)
        shutil.copytree(os.path.join(RESULTS, self.source), self.folder)
        # The committed study predates the CPU sampling: as if every run had it.
        def sampled(summary):
            for record in summary["records"]:
                record["fidelity_runs_checked"] = record["runs"]
        self.edit_summary(sampled)

    def edit_summary(self, change):
        path = os.path.join(self.folder, "summary.json")
        with open(path) as data:
            summary = json.load(data)
        change(summary)
        with open(path, "w") as data:
            json.dump(summary, data)

    def record(self, summary, mode, n):
        return next(r for r in summary["records"] if (r["mode"], r["n"]) == (mode, n))

    def failures(self, checks):
        return [name for name, ok, _ in checks if not ok]

    def main(self, *argv):
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            code = check.main(list(argv))
        return code, printed.getvalue()


class Checks(Folder):
    def test_a_run_without_a_cpu_sample_fails(self):
        def unsampled(summary):
            self.record(summary, "p2p", 4)["fidelity_runs_checked"] = 2
        self.edit_summary(unsampled)
        self.assertEqual(self.failures(check.check(self.folder)), ["mininet p2p N=4"])

    def test_a_whole_folder_passes(self):
        checks = check.check(self.folder)
        self.assertEqual(self.failures(checks), [])
        self.assertEqual(len(checks), 8 + 4)  # 2 modes x 4 N, 3 files and the plot
        self.assertEqual(self.main(self.folder)[0], 0)

    def test_the_plot_is_required(self):
        os.remove(os.path.join(self.folder, "plot.png"))
        self.assertEqual(self.failures(check.check(self.folder)), ["mininet plot.png"])
        code, printed = self.main(self.folder)
        self.assertEqual(code, 1)
        self.assertIn("FAIL mininet plot.png", printed)

    def test_the_plot_must_be_an_image(self):
        with open(os.path.join(self.folder, "plot.png"), "w") as fake:
            fake.write("not a picture")
        self.assertEqual(self.failures(check.check(self.folder)), ["mininet plot.png"])

    def test_a_missing_record_fails(self):
        self.edit_summary(lambda s: s["records"].pop())
        self.assertEqual(self.failures(check.check(self.folder)), ["mininet p2p N=6"])

    def test_no_folder_is_a_usage_error(self):
        with contextlib.redirect_stderr(io.StringIO()):
            self.assertEqual(check.main(["--claims"]), 2)


class Claims(Folder):
    def test_the_committed_study_meets_them(self):
        checks = check.claims(self.folder)
        self.assertEqual(self.failures(checks), [])
        # per (mode, N): measured/bound and server bytes; and the speed-up at N = 6
        self.assertEqual(len(checks), 2 * 8 + 1)
        code, printed = self.main("--claims", self.folder)
        self.assertEqual(code, 0)
        self.assertIn("ok   mininet P2P speed-up at N=6", printed)

    def test_a_super_seeder_sending_1_4_copies_fails(self):
        self.edit_summary(lambda s: self.record(s, "p2p", 6).update(server_copies=1.4))
        self.assertEqual(self.failures(check.claims(self.folder)), ["mininet p2p N=6 server sent"])
        self.assertEqual(self.main("--claims", self.folder)[0], 1)
        self.assertEqual(self.main(self.folder)[0], 0)  # only with --claims

    def test_a_plain_seeder_may_send_more(self):
        def plain(summary):
            summary["config"]["super_seed"] = False
            self.record(summary, "p2p", 6)["server_copies"] = 1.4

        self.edit_summary(plain)
        self.assertEqual(self.failures(check.claims(self.folder)), [])

    def test_a_seeder_sending_less_than_a_copy_fails(self):
        self.edit_summary(lambda s: self.record(s, "p2p", 2).update(server_copies=0.9))
        self.assertEqual(self.failures(check.claims(self.folder)), ["mininet p2p N=2 server sent"])

    def test_client_server_sends_n_copies(self):
        self.edit_summary(lambda s: self.record(s, "cs", 4).update(server_copies=3.5))
        self.assertEqual(self.failures(check.claims(self.folder)), ["mininet cs N=4 server sent"])

    def test_faster_than_the_bound_fails(self):
        self.edit_summary(lambda s: self.record(s, "cs", 1).update(ratio=0.7))
        self.assertEqual(self.failures(check.claims(self.folder)), ["mininet cs N=1 measured/bound"])

    def test_far_slower_than_the_bound_fails(self):
        self.edit_summary(lambda s: self.record(s, "p2p", 4).update(ratio=2.5))
        self.assertEqual(self.failures(check.claims(self.folder)), ["mininet p2p N=4 measured/bound"])

    def test_no_speed_up_fails(self):
        def slow(summary):
            p2p = self.record(summary, "p2p", 6)
            p2p["median_seconds"] = self.record(summary, "cs", 6)["median_seconds"]
        self.edit_summary(slow)
        self.assertEqual(self.failures(check.claims(self.folder)), ["mininet P2P speed-up at N=6"])


class LocalClaims(Folder):
    source = "local-100m-superseed"

    def test_on_one_machine_the_super_seeder_bound_is_tighter(self):
        self.assertEqual(self.failures(check.claims(self.folder)), [])
        self.edit_summary(lambda s: self.record(s, "p2p", 4).update(server_copies=1.25))
        self.assertEqual(self.failures(check.claims(self.folder)), ["local p2p N=4 server sent"])


if __name__ == "__main__":
    unittest.main()
