"""The latency distributions as a PNG (needs matplotlib; without it, a note instead)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path


def available() -> str | None:
    """Why no PNG can be drawn here, or None when it can."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return "matplotlib is not installed (pip install matplotlib)"
    return None


def draw(path: Path, panels: Sequence[tuple[str, Mapping[str, Sequence[float]]]], *,
         title: str) -> None:
    """One panel per ``(heading, {series name: latencies in seconds})``: the share of
    requests answered within each latency (a CDF on a logarithmic time axis)."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.5), squeeze=False)
    for ax, (heading, series) in zip(axes[0], panels, strict=True):
        for name, values in series.items():
            if not values:
                continue
            xs = sorted(v * 1000 for v in values)
            ys = [(i + 1) / len(xs) for i in range(len(xs))]
            ax.step(xs, ys, where="post", label=f"{name} (n={len(xs)})")
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda x, _pos: f"{x:g}"))
        ax.set_xlabel("latency (ms, log scale)")
        ax.set_ylabel("share of requests answered")
        ax.set_title(heading)
        ax.axhline(0.5, color="grey", linewidth=0.5, linestyle=":")
        ax.axhline(0.99, color="grey", linewidth=0.5, linestyle=":")
        ax.grid(True, which="both", linewidth=0.3)
        ax.legend(loc="lower right")
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
