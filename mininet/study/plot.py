"""Overall time against N for both modes, with the fluid-model bounds."""

from typing import List, Optional



def available() -> Optional[str]:
    """None when matplotlib can be used, else why not."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return "matplotlib is not installed (apt-get install python3-matplotlib); the plot is skipped"
    return None


def plot(path: str, records: List[dict], bound_of, title: str, every_n: bool = True) -> None:
    """`bound_of(mode, n)`: the fluid bound, drawn for every N up to the
    largest (`every_n`) or only at the N measured (hosts with link classes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    peers = sorted({r["n"] for r in records})
    grid = list(range(1, max(peers) + 1)) if every_n else peers
    colours = {"cs": "tab:red", "p2p": "tab:blue"}
    labels = {"cs": "client-server", "p2p": "peer-to-peer"}
    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=120)
    for mode in ("cs", "p2p"):
        rows = [r for r in records if r["mode"] == mode]
        if not rows:
            continue
        ax.plot(grid, [bound_of(mode, n) for n in grid], linestyle="--", marker="" if every_n else "_",
                markersize=20, color=colours[mode], alpha=0.6, label=f"{labels[mode]} bound")
        done = [r for r in rows if r["median_seconds"] is not None]
        if not done:
            continue
        xs = [r["n"] for r in done]
        ys = [r["median_seconds"] for r in done]
        low = [y - min(r["times_seconds"]) for y, r in zip(ys, done)]
        high = [max(r["times_seconds"]) - y for y, r in zip(ys, done)]
        ax.errorbar(xs, ys, yerr=[low, high], marker="o", color=colours[mode], capsize=3,
                    label=f"{labels[mode]} measured (median, min–max)")
    ax.set_xlabel("N (downloading hosts)")
    ax.set_ylabel("time until the last host has the file (s)")
    ax.set_xticks(grid)
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
