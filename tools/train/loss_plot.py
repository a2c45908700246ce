"""The loss curves as an SVG picture (no plotting package needed): training loss
of the main head and of the MTP module, and their held-out values.

  /usr/bin/python3 tools/train/loss_plot.py loss.csv loss.svg [title]
"""

import csv
import sys

W, H, PAD = 720, 400, 56
SERIES = [("main", "#1f77b4", "training, main"), ("mtp", "#ff7f0e", "training, MTP"),
          ("held_main", "#08306b", "held-out, main"), ("held_mtp", "#a63603", "held-out, MTP")]


def write_svg(csv_path, svg_path, title=""):
    rows = list(csv.DictReader(open(csv_path)))
    xs = [int(r["step"]) for r in rows]
    vals = [float(r[k]) for r in rows for k, _, _ in SERIES if r[k]]
    lo, hi = min(vals), max(vals)
    lo, hi = max(0.0, lo - 0.1 * (hi - lo)), hi + 0.05 * (hi - lo)
    X = lambda s: PAD + (W - 2 * PAD) * (s - xs[0]) / max(1, xs[-1] - xs[0])
    Y = lambda v: H - PAD - (H - 2 * PAD) * (v - lo) / (hi - lo)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{W / 2}" y="20" text-anchor="middle" font-size="14">{title}</text>',
           f'<line x1="{PAD}" y1="{H - PAD}" x2="{W - PAD}" y2="{H - PAD}" stroke="black"/>',
           f'<line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{H - PAD}" stroke="black"/>',
           f'<text x="{W / 2}" y="{H - 14}" text-anchor="middle">step</text>',
           f'<text x="16" y="{H / 2}" transform="rotate(-90 16 {H / 2})" text-anchor="middle">cross-entropy (nats/token)</text>']
    for i in range(6):
        v = lo + (hi - lo) * i / 5
        out.append(f'<text x="{PAD - 6}" y="{Y(v) + 4:.1f}" text-anchor="end">{v:.2f}</text>')
        out.append(f'<line x1="{PAD}" y1="{Y(v):.1f}" x2="{W - PAD}" y2="{Y(v):.1f}" stroke="#eee"/>')
    for i in range(6):
        s = xs[0] + (xs[-1] - xs[0]) * i / 5
        out.append(f'<text x="{X(s):.1f}" y="{H - PAD + 16}" text-anchor="middle">{int(s)}</text>')
    for n, (key, color, label) in enumerate(SERIES):
        pts = [(X(int(r["step"])), Y(float(r[key]))) for r in rows if r[key]]
        if not pts:
            continue
        width = 1 if key in ("main", "mtp") else 2.5
        out.append(f'<polyline fill="none" stroke="{color}" stroke-width="{width}" points="'
                   + " ".join(f"{x:.1f},{y:.1f}" for x, y in pts) + '"/>')
        out.append(f'<line x1="{W - PAD - 150}" y1="{PAD + 16 * n}" x2="{W - PAD - 130}" y2="{PAD + 16 * n}" '
                   f'stroke="{color}" stroke-width="{width}"/>')
        out.append(f'<text x="{W - PAD - 124}" y="{PAD + 16 * n + 4}">{label}</text>')
    out.append("</svg>")
    with open(svg_path, "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    write_svg(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "")
