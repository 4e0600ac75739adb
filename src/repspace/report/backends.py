"""Report section: the encoder backends side by side — speed against this machine's arithmetic limit, and quality
and compatibility against the torch gallery. It renders what `repspace.studies.backends.backend_study` measured."""

from __future__ import annotations

from typing import Any

from repspace.report.html import Report


def backends_section(report: Report, result: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m, shape, speed = result["machine"], result["shape"], result["speed_rows"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
    names = [r["backend"] for r in speed]
    for ax, key in zip(axes, ("titles/s", "bodies/s")):
        ax.barh(names[::-1], [r[key] for r in speed][::-1], color="#558")
        ax.set_xlabel(f"{key} ({result['n_short'] if key == 'titles/s' else result['n_long']} texts, batches of 32)")
        ax.grid(axis="x", alpha=0.3)
    tt = result["torch_to_torch"]
    parts = [
        Report.text(f"{result['model']} on every encoder backend (exported on first use, offline, cached and checked "
                    f"against torch; docs/encoding.md). The same {result['n_short']} bbc-news titles and "
                    f"{result['n_long']} bodies (spread over the topics) go through each backend in the same "
                    "length-sorted batches of 32; times are one pass after a warm-up batch, on a machine that may be "
                    "shared, so read them as one sample (benchmarks/encode_limit.py repeats and states its load)."),
        Report.text(f"Machine: {m['cpu'] or 'unknown CPU'}, {m['cores']} usable cores, SIMD "
                    f"{' '.join(m['flags']) or 'unknown'}; load average {' / '.join(map(str, m['load']))} at the start, "
                    f"{' / '.join(map(str, result['load_after']))} at the end. fp32 GEMM peak {result['peak_gflops']:.0f} "
                    f"GFLOP/s (best of {', '.join(f'{k} {v:.0f}' for k, v in result['peak'].items())}, measured before "
                    "and after the backends; an int8 backend can pass 100 % of it: its matrix multiplies run on integer "
                    "dot products). The model: "
                    f"{shape['params'] / 1e6:.2f} M matrix-multiply parameters, {shape['layers']} layers, d = "
                    f"{shape['hidden']}: {shape['mflop_per_token']:.1f} MFLOP per token plus attention (counted on the "
                    "padded batches each backend ran)."),
        Report.figure(fig, "texts per second per backend"),
        Report.table(speed, digits=2),
        Report.text(f"Quality. Cosine of each backend's vectors with torch's on the same texts; nDCG@10 of each title "
                    f"searching its own body among the {result['n_long']} bodies, and its ratio to torch's; and "
                    f"`repspace compat`'s criterion: the backend's {result['n_short']} titles search the torch gallery of "
                    f"all {result['gallery_items']:,} bodies at least as well as torch's own titles do (torch → torch: "
                    f"recall@10 {tt['recall@10']:.4f}, nDCG@10 {tt['ndcg@10']:.4f}; no tolerance) — a compatible backend "
                    "can replace torch on the query side of an existing collection without re-encoding it."),
        Report.table(result["quality_rows"]),
    ]
    if result["skipped"]:
        parts.append(Report.text("Not measured here: " + "; ".join(f"{s['backend']} ({s['reason']})"
                                                                    for s in result["skipped"]), note=True))
    report.section("Encoder backends", *parts)
