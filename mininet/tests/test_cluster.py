"""The cluster mode's pure parts: the server list, where hosts go, the
trunks' bounds and demand, the trunk's kind, paths mirrored on a server, a
remote process's PID and start, and the CPU check over several servers."""

import os
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import experiment  # noqa: E402
from study import fidelity, placement, procs, remote  # noqa: E402

F = 8e6 * 16  # 16 MB in bits


class Servers(unittest.TestCase):
    def test_this_machine_first_then_distinct_names(self):
        self.assertEqual(placement.parse_servers("localhost, mnsrv2"), ["localhost", "mnsrv2"])
        for bad in ("localhost", "mnsrv2,localhost", "localhost,a,a", "localhost,-oProxyCommand=x", "localhost,a b",
                    ",".join(["localhost"] + [f"s{i}" for i in range(16)])):
            with self.assertRaises(ValueError, msg=bad):
                placement.parse_servers(bad)

    def test_options_that_need_the_cluster_or_refuse_it(self):
        def configure(*argv):
            return experiment.configure(experiment.parse_args(list(argv) + ["--out", "/tmp/x"]))

        cfg = configure("--cluster", "localhost,mnsrv2", "--peers", "4")
        self.assertEqual((cfg.cluster, cfg.seeder_server, cfg.trunk_bw), (["localhost", "mnsrv2"], "localhost", None))
        self.assertEqual(cfg.placement(4), ["mnsrv2", "localhost", "mnsrv2", "localhost"])
        for argv in (["--trunk-bw", "10"], ["--seeder-server", "mnsrv2"], ["--local", "--cluster", "localhost,b"],
                     ["--cluster", "localhost,b", "--seeder-server", "c"], ["--cluster", "localhost,b", "--cpu", "0.5"],
                     ["--cluster", "localhost,b", "--trunk-bw", "0"]):
            with self.assertRaises(ValueError, msg=argv):
                configure(*argv)


class Placement(unittest.TestCase):
    def test_round_robin_from_the_server_after_the_seeders(self):
        self.assertEqual(placement.place(["localhost", "b"], "localhost", 1), ["b"])
        self.assertEqual(placement.place(["localhost", "b", "c"], "b", 5), ["c", "localhost", "b", "c", "localhost"])
        self.assertEqual(placement.counts(["localhost", "b", "c"], ["c", "c"]), {"localhost": 0, "b": 0, "c": 2})
        with self.assertRaises(ValueError):
            placement.place(["localhost", "b"], "z", 2)

    def test_a_shaped_trunk_bounds_the_time_an_unshaped_one_does_not(self):
        where = placement.place(["localhost", "b"], "localhost", 6)  # three hosts behind the trunk
        self.assertEqual(placement.trunk_bound("cs", F, where, "localhost", None), 0.0)
        self.assertAlmostEqual(placement.trunk_bound("cs", F, where, "localhost", 10.0), 3 * F / 10e6)
        self.assertAlmostEqual(placement.trunk_bound("p2p", F, where, "localhost", 10.0), F / 10e6)
        self.assertEqual(placement.trunk_bound("p2p", F, ["localhost"], "localhost", 10.0), 0.0)

    def test_the_bound_of_a_study_takes_the_trunk_when_it_binds(self):
        cfg = {"size": 2 << 20, "bw": 100.0, "cluster": ["localhost", "b"], "seeder_server": "localhost",
               "trunk_bw": 1.0, "peers": [4]}
        from study import links
        f = (2 << 20) * 8.0
        self.assertAlmostEqual(links.bound_of(cfg)("cs", 4), 2 * f / 1e6)  # two hosts behind a 1 Mbit/s trunk
        self.assertAlmostEqual(links.bound_of(dict(cfg, trunk_bw=None))("cs", 4), 4 * f / 100e6)

    def test_what_a_trunk_may_have_to_carry(self):
        where = ["b", "localhost", "b"]
        demand = placement.trunk_demand(where, "localhost", 10.0, [1.0, 2.0, 4.0], [16.0, 16.0, 32.0])
        self.assertEqual(demand, {"b": min(16.0 + 32.0, 10.0 + 2.0)})

    def test_the_trunk_kind_gre_else_vxlan_else_ssh(self):
        self.assertEqual(placement.choose_trunk({"localhost": {"gre", "vxlan"}, "b": {"gre", "vxlan"}}), "gre")
        self.assertEqual(placement.choose_trunk({"localhost": {"vxlan"}, "b": {"gre", "vxlan"}}), "vxlan")
        self.assertEqual(placement.choose_trunk({"localhost": set(), "b": {"vxlan"}}), "ssh")
        self.assertEqual(placement.choose_trunk({"localhost": {"vxlan"}, "b": {"vxlan"}}, "ssh"), "ssh")
        with self.assertRaisesRegex(ValueError, "localhost"):
            placement.choose_trunk({"localhost": {"vxlan"}, "b": {"gre", "vxlan"}}, "gre")


class Paths(unittest.TestCase):
    def test_a_remote_server_sees_the_mirrored_folders_under_its_root(self):
        server = remote.Server("b", None, "/tmp/peer-lab-study-1-ab")
        try:
            server.mirror("/tmp/work", "work")
            server.mirror("/home/me/out", "out")
            self.assertEqual(server.path("/tmp/work/bin/peer"), "/tmp/peer-lab-study-1-ab/work/bin/peer")
            self.assertEqual(server.path("/home/me/out/logs/x"), "/tmp/peer-lab-study-1-ab/out/logs/x")
            self.assertEqual(server.path("/tmp/workshop/x"), "/tmp/workshop/x")  # a prefix is not a folder
            self.assertEqual(server.path("/usr/bin/python3"), "/usr/bin/python3")
        finally:
            server.disconnect()
        self.assertFalse(os.path.exists(server.control or "/nonexistent"))

    def test_this_machine_is_not_mirrored(self):
        server = remote.Server("localhost", None, "/tmp/peer-lab-study-1-ab")
        server.mirror("/tmp/work", "work")
        self.assertEqual(server.path("/tmp/work/bin/peer"), "/tmp/work/bin/peer")
        self.assertIsNone(server.root)
        self.assertEqual(server.argv("true"), ["sh", "-c", "true"])


class Processes(unittest.TestCase):
    def test_a_process_started_the_cluster_way_prints_its_pid_and_start_then_stops_by_it(self):
        server = remote.Server("localhost")
        with tempfile.TemporaryDirectory() as folder:
            out, err = os.path.join(folder, "out"), os.path.join(folder, "err")
            with open(out, "wb") as o, open(err, "wb") as e:
                asked = time.monotonic()
                proc = server.popen(["sleep", "30"], o, e, lead=0.3)
            pid = proc.remote_pid()
            self.assertEqual(pid, proc.pid)  # here the shell became `sleep` itself
            began = proc.started_at()
            self.assertGreaterEqual(began - asked, 0.25)
            self.assertLess(began - asked, 2.0)
            proc.terminate()
            self.assertEqual(proc.wait(timeout=5), -15)
            self.assertEqual(proc.remote_pid(), pid)

    def test_the_pid_line_is_found_after_what_ssh_said_first(self):
        class Running:
            pid = 4242

            def poll(self):
                return None

        with tempfile.NamedTemporaryFile("w", suffix=".err") as err:
            err.write("mux_client_request_session: session request failed: Session open refused by peer\n"
                      "ControlSocket /tmp/x/master already exists, disabling multiplexing\n"
                      f"{remote.REMOTE_PID}5787 1000.25\nINFO peer: listening\n")
            err.flush()
            proc = remote.RemoteProcess(remote.Server("localhost"), Running(), err.name, (50.0, 1000.0))
            self.assertEqual(proc.remote_pid(timeout=0.1), 5787)
            self.assertAlmostEqual(proc.started_at(), 50.25)

    def test_a_proc_is_timed_from_when_it_began_not_when_it_was_asked(self):
        class Began:
            pid = 1

            def started_at(self):
                return 12.5

        self.assertEqual(procs.Proc("h1", Began(), "o", "e", 10.0).started, 12.5)
        plain = subprocess.Popen(["true"])
        plain.wait()
        self.assertEqual(procs.Proc("h1", plain, "o", "e", 10.0).started, 10.0)


class CpuOverServers(unittest.TestCase):
    def test_a_run_meets_the_check_only_if_every_server_did(self):
        met = fidelity.summarize([0.5, 0.6])
        missed = fidelity.summarize([0.5, 0.2, 0.1])
        combined = fidelity.combine([met, missed])
        self.assertEqual(combined, {"cpu_idle_min": 0.1, "cpu_seconds_below": 2, "cpu_seconds": 3, "fidelity_met": False,
                                    "cpu_steal_max": None})
        stolen = fidelity.combine([fidelity.summarize([0.5], steal=[0.3]), fidelity.summarize([0.4], steal=[0.1])])
        self.assertEqual(stolen["cpu_steal_max"], 0.3)
        self.assertTrue(fidelity.combine([met, met])["fidelity_met"])
        self.assertIsNone(fidelity.combine([fidelity.summarize([])])["fidelity_met"])

    def test_proc_stat_lines_from_another_server(self):
        self.assertEqual(fidelity.parse_counters("cpu  10 0 5 80 5 0 0 2 0 0\n"), (85, 102, 2))
        for line in ("", "cpu0 1 2 3 4", "cpu a b c", "intr 5"):
            self.assertIsNone(fidelity.parse_counters(line), line)


if __name__ == "__main__":
    unittest.main()
