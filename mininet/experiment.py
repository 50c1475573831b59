#!/usr/bin/python3
"""Client-server against peer-to-peer: overall download time as N grows.

For each N and each mode (cs: `peer serve` + N x `peer fetch`; p2p: `tracker`
+ `peer seed` + N x `peer download --seed`), R runs: start the servers on h0,
start the N downloaders at once, take each host's completion time from its
JSON line, check every copy's SHA-1, record the overall time (the last host)
and what the server sent. Writes hosts.csv, runs.csv, summary.json,
tables.md, plot.png and machine.txt into --out, and prints the table.

In Mininet (default, needs root and Debian's python3):
    sudo /usr/bin/python3 mininet/experiment.py --preset quick --out /tmp/q
On one machine, no root, links emulated by peer's rate limits:
    /usr/bin/python3 mininet/experiment.py --local --preset quick --out /tmp/q
Over several servers (Mininet Cluster Edition; README: several machines):
    sudo /usr/bin/python3 mininet/experiment.py --cluster localhost,lab2 --preset quick --out /tmp/q
"""

import argparse
import datetime
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from study import config, links, pieces, plot, results  # noqa: E402
from study.procs import Registry  # noqa: E402
from study.trial import Files, make_seed, run_trial  # noqa: E402


class Stopped(Exception):
    """SIGTERM or SIGHUP: unwind through every `finally` like Ctrl-C does."""


def _on_signal(signum, _frame):
    raise Stopped(signal.Signals(signum).name)


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Rates: every link (server and hosts, up and down) runs at --bw Mbit/s.",
    )
    parser.add_argument("--local", action="store_true", help="every host a process on loopback, no root, no Mininet")
    parser.add_argument("--out", help="results folder (created)")
    config.add_arguments(parser)
    parser.add_argument("--ssh-config", help="--cluster: the ssh configuration that reaches the other servers "
                                             "(ssh -F; default: ssh's own)")
    parser.add_argument("--trunk-link", choices=["auto", "gre", "vxlan", "ssh"], default="auto",
                        help="--cluster: the link between servers (default auto: GRE, else VXLAN, else SSH)")
    parser.add_argument("--cpu", type=float, help="Mininet: CPU share per host (CPULimitedHost), e.g. 0.15")
    parser.add_argument("--switch", choices=["auto", "ovs", "lxbr"], default="auto",
                        help="Mininet switch: Open vSwitch if running, else the Linux bridge (default auto)")
    parser.add_argument("--piece-length", default="auto", help="for peer create (default auto)")
    parser.add_argument("--unchoke-slots", type=int, help="passed to peer seed and peer download (peer's default: as many as its upload feeds, at least 8; a super-seeder 8)")
    parser.add_argument("--seeder-unchoke-slots", type=int, help="only for the seeder (default: as --unchoke-slots)")
    parser.add_argument("--plain-seed", action="store_true",
                        help="the seeder shows its whole bitfield (default: peer seed --super-seed, BEP 16)")
    parser.add_argument("--max-peers", type=int, help="passed to peer seed and peer download (peer's default: 50)")
    parser.add_argument("--events", action="store_true",
                        help="our peers record each piece's arrival and sender (peer --events) under OUT/logs; "
                             "adds the piece x host picture")
    parser.add_argument("--timeout", type=float, help="seconds a trial may take (default 3 x the CS bound + 60)")
    parser.add_argument("--log-level", help="RUST_LOG for every process, e.g. peer=debug (logs under OUT/logs)")
    parser.add_argument("--work", help="scratch folder for the seed and the copies (default: a fresh temporary one)")
    parser.add_argument("--bin", default=os.path.join(REPO, "target", "release"), help="where peer and tracker are")
    parser.add_argument("--report", metavar="DIR", help="only rebuild tables.md, summary.json and plot.png from DIR's CSV files")
    args = parser.parse_args(argv)
    if not args.out and not args.report:
        parser.error("--out DIR is required")
    return args


def configure(args) -> config.Config:
    """The study's configuration from the parsed command line (ValueError if refused)."""
    cfg = config.from_arguments(args, "local" if args.local else "mininet")
    cfg.cpu, cfg.switch, cfg.piece_length = args.cpu, args.switch, args.piece_length
    cfg.seeder_unchoke_slots, cfg.super_seed = args.seeder_unchoke_slots, not args.plain_seed
    cfg.unchoke_slots, cfg.max_peers, cfg.timeout, cfg.log_level = args.unchoke_slots, args.max_peers, args.timeout, args.log_level
    cfg.events = args.events
    if cfg.client != "ours" and (cfg.events or not cfg.super_seed or cfg.unchoke_slots or cfg.seeder_unchoke_slots
                                 or cfg.max_peers or cfg.log_level):
        raise ValueError("--events, --plain-seed, --unchoke-slots, --seeder-unchoke-slots, --max-peers and --log-level "
                         "are for our peer; another --client runs at its defaults")
    if cfg.client != "ours":
        cfg.super_seed = False  # the other client's seeder, at its defaults
    if cfg.cluster and (cfg.cpu or cfg.switch == "ovs"):
        raise ValueError("--cluster runs Linux bridges and plain hosts: no --cpu or --switch ovs")
    return cfg


def machine_info() -> dict:
    info = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": str(os.cpu_count()),
        "kernel": f"{platform.system()} {platform.release()} {platform.version()}",
        "python": f"{sys.executable} {platform.python_version()}",
    }
    try:
        with open("/proc/cpuinfo") as cpu:
            models = [l.split(":", 1)[1].strip() for l in cpu if l.startswith("model name")]
        if models:
            info["cpu"] = models[0]
        with open("/proc/meminfo") as mem:
            total_kib = int(next(l for l in mem if l.startswith("MemTotal")).split()[1])
        info["memory"] = f"{total_kib / (1 << 20):.1f} GiB"
    except (OSError, StopIteration, ValueError):
        pass
    try:
        info["load average at start"] = " ".join(f"{x:.2f}" for x in os.getloadavg()) + " (1, 5, 15 min; other work on the machine)"
    except OSError:
        pass
    try:
        with open("/proc/sys/net/ipv4/tcp_congestion_control") as cc:
            info["tcp congestion control"] = cc.read().strip() + " (this machine's default; --tcp sets the hosts')"
    except OSError:
        pass
    try:
        with open("/etc/debian_version") as deb:
            info["debian"] = deb.read().strip()
    except OSError:
        pass
    return info


def snapshot_binaries(paths, folder: str, machine: dict) -> list:
    import hashlib

    os.makedirs(folder, exist_ok=True)
    copies = []
    for path in paths:
        copy = os.path.join(folder, os.path.basename(path))
        shutil.copy2(path, copy)
        with open(copy, "rb") as data:
            digest = hashlib.sha256(data.read()).hexdigest()[:16]
        built = datetime.datetime.fromtimestamp(os.path.getmtime(path), datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        machine[os.path.basename(path)] = f"sha256 {digest}…, built {built}"
        copies.append(copy)
    head = subprocess.run(["git", "-C", REPO, "log", "-1", "--format=%h %s"], capture_output=True, text=True)
    if head.returncode == 0:
        machine["commit"] = head.stdout.strip()
    return copies


def title_lines(cfg, notes, machine) -> list:
    size_bits = cfg.file_bits
    lines = [
        f"- setting: **{setting_name(cfg.to_json())}**;"
        f" file F = {config.format_size(cfg.size)} ({size_bits / 1e6:.1f} Mbit); N in {', '.join(map(str, cfg.peers))};"
        f" {cfg.runs} run{'s' if cfg.runs > 1 else ''} each",
        (f"- every link u_s = d = u_i = {cfg.bw:g} Mbit/s" if not cfg.links
         else f"- server u_s = {cfg.bw:g} Mbit/s both ways; hosts by class (COUNTxUP/DOWN): {cfg.links}")
        + (f", delay {cfg.delay}" if cfg.delay else "") + (f", loss {cfg.loss}%" if cfg.loss else ""),
        ("- bounds: client-server max(N·F/u_s, F/d); peer-to-peer max(F/u_s, F/d, N·F/(u_s + Σu_i))"
         if cfg.arrivals == "all" else
         "- bounds with arrivals over time (the README derives them): max over hosts of a_i + F/d_i; client-server "
         "also a_k + (N−k+1)·F/u_s; peer-to-peer also F/u_s and the least T with u_s·T + Σ u_i·(T − a_i)⁺ ≥ N·F"),
    ]
    if cfg.arrivals != "all":
        offsets = cfg.offsets(max(cfg.peers))
        lines.append(f"- arrivals: {cfg.arrivals}" + (f" (seed {cfg.arrival_seed})" if cfg.arrivals.startswith("poisson") else "")
                     + f"; the last host starts {offsets[-1]:.1f} s after the first; per-host times from each host's own start")
    if cfg.leave_on_complete and "p2p" in cfg.modes:
        lines.append("- peer-to-peer: each host leaves the moment it has the file (`peer download` without `--seed`)")
    knobs = [f"--{k.replace('_', '-')} {getattr(cfg, k)}" for k in ("unchoke_slots", "seeder_unchoke_slots", "max_peers", "piece_length")
             if getattr(cfg, k) not in (None, "auto")]
    if knobs:
        lines.append("- peer options: " + " ".join(knobs))
    if "p2p" in cfg.modes and cfg.client != "ours":
        lines.append(f"- peer-to-peer client: **{cfg.client}** on every host, seeder and leechers, at its defaults except "
                     "as `mininet/study/other_client.py` says (no DHT, LSD, UPnP, uTP)")
    elif "p2p" in cfg.modes:
        lines.append("- peer-to-peer seeder: " + ("`peer seed --super-seed` (BEP 16: each piece shown to one peer first)"
                                                  if cfg.super_seed else "plain `peer seed` (its whole bitfield to every peer)"))
    lines += [f"- {note}" for note in notes]
    lines.append(f"- machine: {machine.get('cores')} cores ({machine.get('cpu', '?')}), {machine.get('memory', '?')},"
                 f" {machine.get('kernel')}; {machine.get('date')}")
    return lines


def setting_name(cfg_json: dict) -> str:
    if cfg_json["environment"] == "local":
        return "one machine (loopback, rate limits)"
    if cfg_json.get("cluster"):
        return f"Mininet Cluster Edition, {len(cfg_json['cluster'])} servers ({', '.join(cfg_json['cluster'])})"
    return "Mininet"


def write_report(out: str, cfg_json: dict, machine: dict, notes, host_rows, run_rows, lines) -> list:
    file_bits = cfg_json["size"] * 8.0
    rate_bits = cfg_json["bw"] * 1e6
    records = results.summarize(run_rows, cfg_json["modes"], cfg_json["peers"], file_bits, rate_bits,
                                links.bound_of(cfg_json))
    results.write_summary(os.path.join(out, "summary.json"), cfg_json, machine, records, notes)
    with open(os.path.join(out, "tables.md"), "w", encoding="utf-8") as md:
        md.write(results.markdown(lines, host_rows, records, file_bits, run_rows,
                                  own_times=cfg_json.get("arrivals", "all") != "all"))
    return records


def draw(out: str, cfg_json: dict, records) -> None:
    why_not = plot.available()
    if why_not:
        print(f"note: {why_not}", file=sys.stderr)
        return
    where = setting_name(cfg_json) if cfg_json["environment"] == "mininet" else "one machine, rate limits"
    knobs = [f"--{k.replace('_', '-')} {cfg_json.get(k)}" for k in ("unchoke_slots", "seeder_unchoke_slots", "max_peers", "piece_length")
             if cfg_json.get(k) not in (None, "auto")]
    if "p2p" in cfg_json["modes"]:
        knobs += ["seed --super-seed"] if cfg_json.get("super_seed", False) else []
        knobs += [f"(client {cfg_json['client']})"] if cfg_json.get("client", "ours") != "ours" else []
    title = (f"{config.format_size(cfg_json['size'])} to N hosts, {cfg_json['bw']:g} Mbit/s links ({where}), "
             f"{cfg_json['runs']} run{'s' if cfg_json['runs'] > 1 else ''}" + (f"\npeer {' '.join(knobs)}" if knobs else ""))
    plot.plot(os.path.join(out, "plot.png"), records, links.bound_of(cfg_json), title,
              every_n=not cfg_json.get("links"))


def draw_pieces(out: str, cfg, trial, log_dir: str) -> None:
    """With --events, the piece x host picture of a peer-to-peer trial."""
    if not cfg.events or trial.mode != "p2p" or plot.available():
        return
    hosts = pieces.load(log_dir)
    time = f"{trial.overall:.1f} s" if trial.overall else "incomplete"
    title = (f"N = {trial.n}, {config.format_size(cfg.size)}, {cfg.bw:g} Mbit/s links, run {trial.run}: {time}, "
             f"bound {trial.bound:.1f} s")
    pieces.draw(os.path.join(out, f"pieces-p2p-n{trial.n}-r{trial.run}.png"), hosts, cfg.rate_bits, title)


def report_only(folder: str) -> int:
    import json

    with open(os.path.join(folder, "summary.json")) as data:
        saved = json.load(data)
    host_rows = results.read_csv(os.path.join(folder, "hosts.csv"))
    run_rows = results.read_csv(os.path.join(folder, "runs.csv"))
    saved["config"].setdefault("super_seed", False)  # results from before the option: a plain seeder
    cfg = config.Config(**saved["config"])
    notes = saved.get("notes", [])
    lines = title_lines(cfg, notes, saved["machine"])
    records = write_report(folder, saved["config"], saved["machine"], notes, host_rows, run_rows, lines)
    draw(folder, saved["config"], records)
    print(results.per_n_table(records))
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.report:
        return report_only(args.report)
    try:
        cfg = configure(args)
    except ValueError as error:
        print(f"experiment.py: {error}", file=sys.stderr)
        return 2
    peer, tracker = os.path.join(args.bin, "peer"), os.path.join(args.bin, "tracker")
    for binary in (peer, tracker):
        if not os.access(binary, os.X_OK):
            print(f"experiment.py: {binary} is missing: cargo build --release --bins --locked", file=sys.stderr)
            return 1
    if not args.local and os.geteuid() != 0:
        print("experiment.py: Mininet needs root (sudo /usr/bin/python3 mininet/experiment.py ...), or use --local", file=sys.stderr)
        return 1

    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    # SIGINT too: a shell starts background jobs with it ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for handled in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(handled, _on_signal)
    machine = machine_info()
    registry = Registry()
    env = None
    work = os.path.abspath(args.work) if args.work else tempfile.mkdtemp(prefix="peer-lab-study-")
    host_rows, run_rows, notes = [], [], []
    failed = False
    try:
        # A private copy of the binaries: every trial runs the same build even
        # if target/release is rebuilt while the study runs.
        peer, tracker = snapshot_binaries([peer, tracker], os.path.join(work, "bin"), machine)
        seed_dir, seed_name, seed_sha1 = make_seed(REPO, cfg.size, work)
        files = Files(peer, tracker, seed_dir, seed_name, seed_sha1, work)
        if cfg.environment == "local":
            from study.local import LocalEnvironment

            env = LocalEnvironment(cfg, max(cfg.peers))
        elif cfg.cluster:
            import mininet.log
            import mininet.net
            from study import cluster

            mininet.log.setLogLevel("warning")
            env = cluster.ClusterEnvironment(cfg, max(cfg.peers), files, out, args.ssh_config, args.trunk_link)
            machine["mininet"] = mininet.net.VERSION
            machine["switch"] = "lxbr on every server"
            machine["trunk"] = env.trunk
        else:
            from study import net

            features = net.kernel_features()
            print("kernel support for Mininet:")
            for line in net.feature_report(features):
                print("  " + line)
            missing = [f for f in ("netns", "veth", "htb") if not features[f][0]]
            if missing:
                raise RuntimeError(f"this kernel lacks {', '.join(missing)}: Mininet cannot shape links here")
            import mininet.log
            import mininet.net

            mininet.log.setLogLevel("warning")
            env = net.MininetEnvironment(cfg, max(cfg.peers), features)
            machine["mininet"] = mininet.net.VERSION
            machine["kernel features"] = ", ".join(f"{k} {'yes' if ok else 'no'}" for k, (ok, _) in features.items())
            machine["netem"] = "yes" if features["netem"][0] else "no (delay and loss unavailable)"
            machine["switch"] = env.net.switch_name
        notes = env.notes
        for note in notes:
            print(f"note: {note}")
        cfg_json = cfg.to_json()
        lines = title_lines(cfg, notes, machine)
        with open(os.path.join(out, "machine.txt"), "w") as m:
            m.writelines(f"{k}: {v}\n" for k, v in machine.items())
        for n in cfg.peers:
            for run in range(1, cfg.runs + 1):
                for mode in cfg.modes:
                    log_dir = os.path.join(out, "logs", f"{mode}-n{n}-r{run}")
                    shutil.rmtree(log_dir, ignore_errors=True)
                    trial = run_trial(env, cfg, files, mode, n, run, registry, log_dir)
                    host_rows += results.host_rows(cfg.environment, trial)
                    row = results.run_row(cfg.environment, trial)
                    run_rows.append(row)
                    print(progress_line(trial, row, cfg), flush=True)
                    draw_pieces(out, cfg, trial, log_dir)
                    failed |= not trial.verified
                    results.write_csv(os.path.join(out, "hosts.csv"), host_rows, results.HOST_COLUMNS)
                    results.write_csv(os.path.join(out, "runs.csv"), run_rows, results.RUN_COLUMNS)
                    write_report(out, cfg_json, machine, notes, host_rows, run_rows, lines)
        machine["load average at end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
        with open(os.path.join(out, "machine.txt"), "w") as m:
            m.writelines(f"{k}: {v}\n" for k, v in machine.items())
        records = write_report(out, cfg_json, machine, notes, host_rows, run_rows, lines)
        draw(out, cfg_json, records)
        print()
        print(results.per_n_table(records))
        print(f"\nresults in {out}: tables.md, hosts.csv, runs.csv, summary.json"
              + ("" if plot.available() else ", plot.png"))
    except (KeyboardInterrupt, Stopped) as stop:
        print(f"\nexperiment.py: stopped ({str(stop) or 'SIGINT'}); cleaning up", file=sys.stderr)
        return 130
    except Exception as error:  # report, clean up, and fail
        print(f"experiment.py: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    finally:
        # Ignore further signals while cleaning up, so that a second Ctrl-C
        # cannot leave processes or the network behind.
        for ignored in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(ignored, signal.SIG_IGN)
        registry.stop_all()
        if env is not None:
            env.close()
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


def progress_line(trial, row, cfg) -> str:
    head = f"{trial.mode:3s} N={trial.n} run {trial.run}/{cfg.runs}:"
    if not trial.complete:
        return f"{head} FAILED: {row['error']}"
    sent = f", server sent {trial.server_bytes / cfg.size:.2f} F" if trial.server_bytes is not None else ""
    check = "all copies verified" if trial.verified else f"NOT VERIFIED: {row['error']}"
    idle = trial.cpu.get("cpu_idle_min")
    cpu = "" if idle is None else (f"; CPU idle at least {idle:.0%} each second" if trial.cpu.get("fidelity_met")
                                   else f"; CPU idle fell to {idle:.0%} (fidelity check missed)")
    return f"{head} {trial.overall:7.2f} s (bound {trial.bound:.2f} s, x{row['ratio']:.2f}){sent}; {check}{cpu}"


if __name__ == "__main__":
    sys.exit(main())
