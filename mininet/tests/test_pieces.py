"""Reading back our peers' --events files and drawing them."""

import json
import os
import tempfile
import unittest

from study import pieces

SEEDER = "aa" * 20
H1 = "01" * 20
H2 = "02" * 20


def write(folder, name, events):
    with open(os.path.join(folder, f"{name}.events.jsonl"), "w") as out:
        for event in events:
            out.write(json.dumps(event) + "\n")


def swarm(folder):
    start = {"event": "start", "pieces": 2, "piece_length": 1000, "port": 1}
    write(folder, "seeder", [dict(start, t=0, peer_id=SEEDER), {"t": 0.1, "event": "offer", "piece": 0, "to": H1}])
    write(folder, "h1", [dict(start, t=0, peer_id=H1),
                         {"t": 0.5, "event": "piece", "piece": 0, "from": [SEEDER]},
                         {"t": 1.5, "event": "piece", "piece": 1, "from": [H2, SEEDER]}])
    write(folder, "h2", [dict(start, t=0, peer_id=H2),
                         {"t": 0.7, "event": "piece", "piece": 1, "from": [SEEDER]},
                         {"t": 1.2, "event": "piece", "piece": 0, "from": [H1, "ff" * 20]}])
    with open(os.path.join(folder, "h2.events.jsonl"), "a") as out:
        out.write('{"t": 2.0, "event": "pie')  # cut short when the process stopped


class Load(unittest.TestCase):
    def test_senders_are_named_by_host_and_unknown_ids_kept(self):
        with tempfile.TemporaryDirectory() as folder:
            swarm(folder)
            hosts = pieces.load(folder)
        self.assertEqual(sorted(hosts), ["h1", "h2", "seeder"])
        self.assertEqual(hosts["h1"].arrivals[1], (1.5, 1, ["h2", "seeder"]))
        self.assertEqual(hosts["h2"].arrivals[1][2], ["h1", "ff" * 20])
        self.assertEqual((hosts["h1"].done, hosts["h2"].done, hosts["seeder"].done), (1.5, 1.2, None))

    def test_the_seeders_copies_and_upload_over_time(self):
        with tempfile.TemporaryDirectory() as folder:
            swarm(folder)
            hosts = pieces.load(folder)
        self.assertEqual(pieces.seeder_copies(hosts), {0: 1, 1: 2})
        # Second 0: pieces 0 and 1 whole (2000 bytes); second 1: half of piece 1.
        self.assertEqual(pieces.seeder_upload(hosts), [2000.0, 500.0])

    def test_the_picture_is_drawn_only_when_a_host_recorded_a_piece(self):
        with tempfile.TemporaryDirectory() as folder:
            swarm(folder)
            path = os.path.join(folder, "pieces.png")
            self.assertTrue(pieces.draw(path, pieces.load(folder), 8000.0, "test"))
            self.assertGreater(os.path.getsize(path), 1000)
            self.assertFalse(pieces.draw(path + "2", {}, 8000.0, "test"))


if __name__ == "__main__":
    unittest.main()
