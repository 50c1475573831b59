"""How a trial turns each downloader's JSON line into its completion time,
and the command lines it builds from the study's options."""

import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import experiment  # noqa: E402
from study import local, net, trial  # noqa: E402


class FakeHost:
    def __init__(self, name):
        self.name = name


class FakeProc:
    """A finished (or still running) downloader: when it was started and what it printed."""

    def __init__(self, started, line=None, returncode=0, alive=False):
        self.started, self.line, self._returncode, self._alive = started, line, returncode, alive

    def alive(self):
        return self._alive

    @property
    def returncode(self):
        return None if self._alive else self._returncode

    def stderr_tail(self, lines=5):
        return "boom"


def collect(procs, extra=()):
    started = [(FakeHost(f"h{i}"), proc) for i, proc in enumerate(procs, start=1)]
    return trial.completions(started, lambda proc: proc.line, extra)


class StartOffsets(unittest.TestCase):
    def test_a_later_start_adds_to_the_host_own_time(self):
        # h1 started at 100.0 and took 4.0 s; h2 started 0.25 s later and took 4.5 s;
        # h3 started 0.5 s later and took 3.0 s: done at 4.0, 4.75 and 3.5 s.
        results = collect([
            FakeProc(100.0, {"seconds": 4.0, "bytes": 10}),
            FakeProc(100.25, {"seconds": 4.5, "bytes": 10}),
            FakeProc(100.5, {"seconds": 3.0, "bytes": 10}),
        ])
        self.assertEqual([r.start_offset for r in results], [0.0, 0.25, 0.5])
        self.assertEqual([r.own_seconds for r in results], [4.0, 4.5, 3.0])
        self.assertEqual([r.seconds for r in results], [4.0, 4.75, 3.5])
        self.assertEqual([r.host for r in results], ["h1", "h2", "h3"])
        overall = trial.TrialResult("cs", 3, 1, results, None, 1.0).overall
        self.assertEqual(overall, 4.75)

    def test_times_count_from_the_first_downloader_started(self):
        # The first one started is the reference even when it finishes last.
        results = collect([FakeProc(7.0, {"seconds": 9.0, "bytes": 1}), FakeProc(8.5, {"seconds": 1.0, "bytes": 1})])
        self.assertEqual([r.seconds for r in results], [9.0, 2.5])
        self.assertEqual([r.start_offset for r in results], [0.0, 1.5])

    def test_a_host_without_its_line_is_incomplete(self):
        results = collect([
            FakeProc(0.0, {"seconds": 1.0, "bytes": 5}),
            FakeProc(0.1, None, alive=True),
            FakeProc(0.2, None, returncode=3),
        ])
        self.assertEqual([r.completed for r in results], [True, False, False])
        self.assertEqual([r.seconds for r in results], [1.0, None, None])
        self.assertEqual(results[1].error, "timed out")
        self.assertEqual(results[2].error, "exit 3: boom")
        self.assertAlmostEqual(results[2].start_offset, 0.2)
        self.assertIsNone(trial.TrialResult("p2p", 3, 1, results, None, 1.0).overall)

    def test_peer_to_peer_keeps_what_the_line_says(self):
        line = {"seconds": 2.0, "bytes": 8, "peers": 3, "uploaded": 12, "hash_failures": 0, "other": 1}
        (result,) = collect([FakeProc(0.0, line)], ("peers", "uploaded", "hash_failures"))
        self.assertEqual((result.peers, result.uploaded, result.hash_failures, result.bytes), (3, 12, 0, 8))


def configure(*argv):
    return experiment.configure(experiment.parse_args(list(argv) + ["--out", "unused"]))


FILES = trial.Files("/bin/peer", "/bin/tracker", "/seed", "seed-16m.bin", "0" * 40, "/work")


def seeder_argv(cfg):
    return trial._knobs(cfg, seeder=True)


def downloader_argv(cfg):
    return trial._knobs(cfg, seeder=False)


class Options(unittest.TestCase):
    """From experiment.py's command line to the peer options each process gets."""

    def test_the_seeder_super_seeds_unless_plain_seed(self):
        self.assertIn("--super-seed", seeder_argv(configure("--local")))
        self.assertNotIn("--super-seed", downloader_argv(configure("--local")))
        self.assertNotIn("--super-seed", seeder_argv(configure("--local", "--plain-seed")))
        self.assertFalse(configure("--plain-seed").to_json()["super_seed"])

    def test_unchoke_slots_for_everyone_or_the_seeder_alone(self):
        self.assertNotIn("--unchoke-slots", seeder_argv(configure()) + downloader_argv(configure()))
        both = configure("--unchoke-slots", "3")
        self.assertEqual(self.slots(seeder_argv(both)), "3")
        self.assertEqual(self.slots(downloader_argv(both)), "3")
        seeder_only = configure("--seeder-unchoke-slots", "1")
        self.assertEqual(self.slots(seeder_argv(seeder_only)), "1")
        self.assertNotIn("--unchoke-slots", downloader_argv(seeder_only))
        split = configure("--unchoke-slots", "4", "--seeder-unchoke-slots", "2")
        self.assertEqual((self.slots(seeder_argv(split)), self.slots(downloader_argv(split))), ("2", "4"))

    def test_max_peers_reaches_every_peer(self):
        cfg = configure("--max-peers", "7")
        for argv in (seeder_argv(cfg), downloader_argv(cfg)):
            self.assertEqual(argv[argv.index("--max-peers") + 1], "7")

    def test_piece_length_reaches_peer_create(self):
        auto = trial._create_argv(configure(), FILES, "http://t/announce", "/w/t.torrent")
        self.assertNotIn("--piece-length", auto)
        self.assertEqual(auto[:3], ["/bin/peer", "create", "/seed/seed-16m.bin"])
        chosen = trial._create_argv(configure("--piece-length", "64K"), FILES, "http://t/announce", "/w/t.torrent")
        self.assertEqual(chosen[chosen.index("--piece-length") + 1], "64K")

    def test_cpu_and_switch_reach_the_configuration(self):
        cfg = configure("--cpu", "0.3", "--switch", "lxbr")
        self.assertEqual((cfg.cpu, cfg.switch), (0.3, "lxbr"))
        self.assertIsNone(configure().cpu)

    @staticmethod
    def slots(argv):
        return argv[argv.index("--unchoke-slots") + 1]


class LocalRefusesDelayAndLoss(unittest.TestCase):
    def run_main(self, *argv):
        import io
        import tempfile
        from contextlib import redirect_stderr

        with tempfile.TemporaryDirectory() as scratch:
            out = os.path.join(scratch, "out")
            err = io.StringIO()
            # A --bin with no binaries: were the option not refused first,
            # main would stop on the missing binaries (exit 1) instead.
            with redirect_stderr(err):
                code = experiment.main(list(argv) + ["--out", out, "--bin", scratch])
            return code, err.getvalue(), os.path.exists(out)

    def test_delay_is_refused_before_anything_is_made(self):
        code, err, made = self.run_main("--local", "--delay", "5ms")
        self.assertEqual(code, 2, err)
        self.assertIn("--delay and --loss need Mininet", err)
        self.assertFalse(made)

    def test_loss_is_refused(self):
        code, err, _ = self.run_main("--local", "--loss", "1")
        self.assertEqual(code, 2, err)
        self.assertIn("need Mininet", err)

    def test_mininet_takes_them(self):
        cfg = configure("--delay", "5ms", "--loss", "1")
        self.assertEqual((cfg.environment, cfg.delay, cfg.loss), ("mininet", "5ms", 1.0))
        self.assertIsNone(configure("--local", "--delay", "0").delay)


if __name__ == "__main__":
    unittest.main()


class OneAddressForAll(unittest.TestCase):
    """On one machine every peer connects from 127.0.0.1: seeders and
    downloaders lift --max-per-ip there, and only there."""

    def test_local_peers_lift_the_per_address_limit_and_mininet_peers_keep_it(self):
        limits = local.RateLimits("100mbit")
        h1 = local.LocalHost("h1")
        for argv in (limits.seed(), limits.download(h1)):
            self.assertEqual(argv[argv.index("--max-per-ip") + 1], "10000")
        self.assertNotIn("--max-per-ip", limits.serve() + limits.fetch(h1))
        mininet = net.NoLimits()
        self.assertNotIn("--max-per-ip", mininet.seed() + mininet.download())


class OtherClient(unittest.TestCase):
    """`--client`: the wrapper's command line on each kind of host."""

    def cfg(self, **extra):
        from study import config
        return config.Config(environment="local", size=1 << 20, peers=[2], runs=1, bw=8.0, modes=["p2p"],
                             client="libtorrent", **extra)

    def test_on_one_machine_the_link_rates_become_the_clients_limits(self):
        from study import trial
        env = type("Env", (), {"name": "local"})()
        host = local.LocalHost("h1")
        argv = trial._other_client(self.cfg(), env, "download", "t.torrent", "/out/h1", host, 7000, 8.0, 16.0)
        self.assertEqual(argv[1:5], [trial.OTHER_CLIENT, "libtorrent", "download", "t.torrent"])
        self.assertEqual(argv[argv.index("--up") + 1], "1000000")
        self.assertEqual(argv[argv.index("--down") + 1], "2000000")
        self.assertIn("--local", argv)
        self.assertNotIn("--leave", argv)
        leaving = trial._other_client(self.cfg(leave_on_complete=True), env, "download", "t", "/o", host, 1, 8.0, 8.0)
        self.assertIn("--leave", leaving)

    def test_in_mininet_the_links_shape_and_the_client_has_no_limits(self):
        from study import trial
        env = type("Env", (), {"name": "mininet"})()
        host = local.LocalHost("h0")
        argv = trial._other_client(self.cfg(), env, "seed", "t.torrent", "/seed", host, 6881, 8.0, None)
        self.assertNotIn("--up", argv)
        self.assertNotIn("--local", argv)
        self.assertEqual(argv[argv.index("--port") + 1], "6881")
        self.assertEqual(argv[argv.index("--size") + 1], str(1 << 20))

    def test_transmission_is_refused_on_one_machine(self):
        with self.assertRaisesRegex(ValueError, "Mininet"):
            configure("--local", "--client", "transmission")
        self.assertEqual(configure("--client", "transmission").client, "transmission")

    def test_transmission_status_lines_give_completion_and_uploaded_bytes(self):
        from study import other_client
        status = other_client.TRANSMISSION_STATUS
        downloading = status.match("Progress: 45.2%, dl from 3 of 5 peers (1.2 MB/s), ul to 2 (500 kB/s) [0.45]")
        self.assertEqual(downloading.groups(), ("Progress: 45.2%", "0.45"))
        seeding = status.match("Seeding, uploading to 1 of 2 peer(s), 1.2 MB/s [1.05]")
        self.assertEqual(seeding.groups(), ("Seeding", "1.05"))
        self.assertIsNone(status.match("Verifying local files (12.00%, 12.00% valid)"))
        self.assertEqual(other_client._transmission_uploaded("1.05", 1000), 1050)
        self.assertEqual(other_client._transmission_uploaded("None", 1000), 0)
