"""What the federated lesson shows, as HTML strings: the rounds of the worked example, the traffic table."""

from __future__ import annotations

from html import escape

from .federated import Client, Round, Traffic


def vec(values: list[float]) -> str:
    return "(" + ", ".join(f"{v:.4g}" for v in values) + ")"


def human_bytes(n: int) -> str:
    """Bytes with a binary unit: 1,052 B, 14.2 KiB, 3.1 MiB."""
    if n < 1024:
        return f"{n:,} B"
    for unit in ("KiB", "MiB", "GiB"):
        n /= 1024
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}"
    raise AssertionError("unreachable")


def rounds_table(clients: list[Client], rounds: list[Round]) -> str:
    """One row per round: W_r, each client's delta, the weighted mean, the update sent, W_{r+1}, distance."""
    head = "".join(f"<th>d from {escape(c.name)} (n={c.tokens:,})</th>" for c in clients)
    has_momentum = any(r.momentum is not None for r in rounds)
    rows = []
    for r in rounds:
        cells = "".join(f"<td>{vec(r.deltas[c.name])}</td>" for c in clients)
        m = f"<td>{vec(r.momentum)}</td>" if has_momentum and r.momentum is not None else ""
        rows.append(f'<tr data-round="{r.index}"><td>{r.index}</td><td>{vec(r.start)}</td>{cells}'
                    f"<td>{vec(r.mean_delta)}</td>{m}<td>{vec(r.update)}</td><td>{vec(r.end)}</td>"
                    f'<td data-distance="{r.distance:.6g}">{r.distance:.4g}</td></tr>')
    m_head = "<th>momentum m</th>" if has_momentum else ""
    return (f"<table><thead><tr><th>round r</th><th>W<sub>r</sub></th>{head}<th>weighted mean d</th>{m_head}"
            f"<th>update u (f16)</th><th>W<sub>r+1</sub></th><th>distance to target</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")


def traffic_table(rows: list[Traffic]) -> str:
    """Per preset: parameters, the f32 weights received on joining, the f16 frames per round."""
    body = "".join(
        f'<tr data-preset="{escape(t.preset)}"><td><code>{escape(t.preset)}</code></td><td>{t.params:,}</td>'
        f"<td>{human_bytes(t.join_bytes)}</td><td>{human_bytes(t.up_bytes)}</td><td>{human_bytes(t.down_bytes)}</td>"
        f"<td>{human_bytes(t.up_bytes + t.down_bytes)}</td></tr>" for t in rows)
    return ("<table><thead><tr><th>preset</th><th>parameters</th><th>on joining (f32 weights, down)</th>"
            "<th>per round up (f16 delta)</th><th>per round down (f16 update)</th><th>per round, both ways</th>"
            f"</tr></thead><tbody>{body}</tbody></table>")
