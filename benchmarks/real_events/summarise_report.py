"""Print a workflow run's numbers as the Markdown tables `benchmarks/RESULTS.md` records.

    python benchmarks/real_events/summarise_report.py runs/drums

Per pooling rule: whether its CRNN passed the sanity gates, clip mAP, collar F1, HEAR onset-only
F1 (200 / 50 ms), PSDS1/2, median absolute onset error, the post-processing chosen on
validation and the epochs trained; then frozen + probe against scratch, the decision and the
wall time.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _f(value, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def summarise(run: Path) -> str:
    report = json.loads((run / "report.json").read_text())
    boundaries, trained = report["boundaries"], report["pooling"]["trained"]
    lines = [
        f"Run `{run}`: data `{report['run']['data']}`, encoder `{report['run']['encoder'] or 'CRNN trained here'}`, "
        f"wall time {report['run']['wall_seconds']:.0f} s.",
        "",
        "| pooling | learned | clip mAP | collar F1 | onset F1 200 ms | onset F1 50 ms | PSDS1 | PSDS2 "
        "| median abs onset (s) | median / threshold | epochs (best, stop) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for rule, item in boundaries["per_rule"].items():
        point, summary = item["point"], item["summary"] or {}
        post = boundaries["postprocessing"][rule]
        training = trained[rule]
        chosen = " (chosen)" if rule == report["pooling"]["chosen"] and boundaries["decided"] else ""
        lines.append(
            f"| {rule}{chosen} | {'yes' if boundaries['gates'][rule]['passed'] else 'no'} | "
            f"{_f(point.get('clip_map'))} "
            f"| {_f(point.get('collar_f1'))} | {_f(point.get('onset_f1_200ms'))} | {_f(point.get('onset_f1_50ms'))} "
            f"| {_f(point.get('psds1'))} | {_f(point.get('psds2'))} | {_f(summary.get('median_abs_onset_error'))} "
            f"| {post['median_frames']} fr / {post['threshold']} | {training['epochs_run']} "
            f"({training['best_epoch'] + 1}, "
            f"{training['stopped']}{', improving' if training['still_improving'] else ''}) |"
        )
    probe = report["probe"]
    lines += [
        "",
        f"Frozen encoder: {probe['encoder']['kind']} ({probe['probe_description']}); classes "
        f"{', '.join(probe['task_classes'])}.",
        "",
        "| system | learned | clip mAP [95 % CI] | collar F1 [95 % CI] | onset F1 200 ms | PSDS1 | "
        "median / threshold |",
        "|---|---|---|---|---|---|---|",
    ]
    for system, key in (("frozen + probe", "frozen"), ("scratch", "scratch")):
        block, post = probe[key], probe["postprocessing"][system]
        ci = {metric: block["intervals"].get(metric) or {} for metric in ("clip_map", "collar_f1")}
        lines.append(
            f"| {system} | {'yes' if probe['gates'][system]['passed'] else 'no'} "
            f"| {_f(block['point'].get('clip_map'))} [{_f(ci['clip_map'].get('low'))}, "
            f"{_f(ci['clip_map'].get('high'))}] "
            f"| {_f(block['point'].get('collar_f1'))} [{_f(ci['collar_f1'].get('low'))}, "
            f"{_f(ci['collar_f1'].get('high'))}] "
            f"| {_f(block['point'].get('onset_f1_200ms'))} | {_f(block['point'].get('psds1'))} "
            f"| {post['median_frames']} fr / {post['threshold']} |"
        )
    lines += [
        "",
        f"Pooling decision: {report['pooling']['decision']}. Decision: **{report['decision']['path']}** — "
        f"{report['decision']['statement']}",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a workflow run folder (holds report.json)")
    print(summarise(parser.parse_args().run))


if __name__ == "__main__":
    main()
