"""Draw the figures of the docs that are diagrams (not results): ``python docs/make_figures.py``.

Writes ``docs/_static/tape.png``: how the backward pass of a model written in plain Python
is found. Needs matplotlib (``pip install 'npnet[examples]'``).
"""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def box(ax, x, y, text, color, w=1.9, h=0.62):
    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.04", fc=color, ec="#333333", lw=1))
    ax.text(x, y, text, ha="center", va="center", fontsize=8.5, family="monospace")


def arrow(ax, a, b, color="#333333", rad=0.0, label=None, dy=0.18):
    ax.add_patch(FancyArrowPatch(a, b, arrowstyle="-|>", mutation_scale=11, color=color, lw=1.2,
                                 connectionstyle=f"arc3,rad={rad}"))
    if label:
        ax.text((a[0] + b[0]) / 2, (a[1] + b[1]) / 2 + dy, label, ha="center", fontsize=8, color=color)


def tape_figure(path: str) -> None:
    fig, ax = plt.subplots(figsize=(10, 4.6))
    ax.set_xlim(-0.6, 10.6)
    ax.set_ylim(-2.9, 2.3)
    ax.axis("off")
    fwd, bwd = "#dbe9f6", "#fde2c8"
    # The user's call():  h = dense_1(x);  g = dense_2(h);  y = add([h, g])
    ax.text(-0.5, 2.05, "call():   h = dense_1(x)    g = dense_2(h)    y = add([h, g])", fontsize=9.5,
            family="monospace")
    ax.text(-0.5, 1.62, "forward, training: each primitive call is recorded on the tape", fontsize=9, color="#1f4e79")
    xs = {"x": 0.3, "d1": 2.2, "d2": 5.0, "add": 7.8, "loss": 9.9}
    box(ax, xs["x"], 0.8, "x", "white", w=0.8)
    box(ax, xs["d1"], 0.8, "1  dense_1\ncache: x", fwd)
    box(ax, xs["d2"], 0.8, "2  dense_2\ncache: h", fwd)
    box(ax, xs["add"], 0.8, "3  add\ninputs h, g", fwd)
    box(ax, xs["loss"], 0.8, "loss", "white", w=0.9)
    arrow(ax, (xs["x"] + 0.4, 0.8), (xs["d1"] - 0.95, 0.8))
    arrow(ax, (xs["d1"] + 0.95, 0.8), (xs["d2"] - 0.95, 0.8), label="h")
    arrow(ax, (xs["d2"] + 0.95, 0.8), (xs["add"] - 0.95, 0.8), label="g")
    arrow(ax, (xs["d1"] + 0.6, 1.12), (xs["add"] - 0.6, 1.12), rad=-0.25, label="h again (fan-out)", dy=0.72)
    arrow(ax, (xs["add"] + 0.95, 0.8), (xs["loss"] - 0.45, 0.8), label="y")

    ax.text(-0.5, -0.35, "backward: the tape in reverse (3, 2, 1); gradients of an array used twice are summed",
            fontsize=9, color="#8a4b08")
    y0 = -1.6
    box(ax, xs["d1"], y0, "dense_1.backward\n(cache, dh)", bwd)
    box(ax, xs["d2"], y0, "dense_2.backward\n(cache, dg)", bwd)
    box(ax, xs["add"], y0, "add.backward\n(cache, dy)", bwd)
    box(ax, xs["loss"], y0, "dL/dy", "white", w=0.9)
    arrow(ax, (xs["loss"] - 0.45, y0), (xs["add"] + 0.95, y0), color="#8a4b08", label="dy")
    arrow(ax, (xs["add"] - 0.95, y0), (xs["d2"] + 0.95, y0), color="#8a4b08", label="dg")
    arrow(ax, (xs["d2"] - 0.95, y0), (xs["d1"] + 0.95, y0), color="#8a4b08", label="dh1")
    arrow(ax, (xs["add"] - 0.6, y0 - 0.32), (xs["d1"] + 0.6, y0 - 0.32), color="#8a4b08", rad=-0.25,
          label="dh2", dy=-0.75)
    ax.text(xs["d1"], y0 - 1.05, "dh = dh1 + dh2\n-> dW1, db1 (set)", ha="center", fontsize=8, color="#8a4b08")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


if __name__ == "__main__":
    out = os.path.join(HERE, "_static", "tape.png")
    tape_figure(out)
    print(f"wrote {out}")
