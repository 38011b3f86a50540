"""Is every study run flat where it stopped? The protocol's rule (:mod:`kdmri.training.study`)
applied to the held-out curves of a study's runs (:func:`kdmri.reporting.study.run_curves`):
at the selected epoch, at the run's end, and at the final learning rate without the drop's
step; and the table docs/RESULTS.md shows."""

from __future__ import annotations

import pandas as pd

from kdmri.training import study as protocol


def flatness(curves: pd.DataFrame, window: int = protocol.WINDOW, delta_db: float = protocol.DELTA_DB
             ) -> pd.DataFrame:
    """Is each run flat at its selected epoch? Per run, the protocol's gain there
    (:func:`kdmri.training.study.window_gain`: best score up to the selected epoch minus the
    best up to ``window`` epochs earlier); per (kind, acc, model), over seeds: the selected
    epochs, the mean and max gain, how many windows contain the learning-rate drop, and the
    verdict: ``flat (< delta dB)`` when every seed's gain is below ``delta_db``, ``still
    rising`` (with how many seeds) when any is not, ``undetermined`` when a run selected an
    epoch within the first ``window`` (no window before it). And the same rule at each run's
    last epoch (``end_gain_max``, ``end_verdict``): would training longer have helped? A
    run selected just after its learning-rate drop is "rising" at the selected epoch (the
    drop's step is in the window) and can still be flat at its end.

    And at the final learning rate without the drop's step (``final_gain_max``,
    ``final_epochs``, ``final_verdict``; :func:`kdmri.training.study.final_lr_gain`): the
    gain over the run's last ``window`` epochs, or over fewer where fewer than ``window + 1``
    epochs follow the drop, measured from the first epoch at the final rate. A curve that
    jumps at the drop and is level after it is rising by the end rule and flat by this one;
    a curve still climbing at the final rate is rising by both."""
    runs = []
    for (kind, acc, model, seed), c in curves.groupby(["kind", "acc", "model", "seed"], sort=False):
        c = c.sort_values("epoch")
        sel, step = int(c["selected"].iloc[0]), c["lr_step"].iloc[0]
        scores = list(c["score"])
        final, final_epochs = protocol.final_lr_gain(scores, step, window)
        runs.append({"kind": kind, "acc": acc, "model": model, "seed": seed, "selected": sel,
                     "gain": protocol.window_gain(scores, sel, window),
                     "end_gain": protocol.window_gain(scores, len(c), window),
                     "final_gain": final, "final_epochs": final_epochs,
                     "drop_in_window": bool(pd.notna(step) and sel - window <= step < sel)})
    rows = []
    groups = pd.DataFrame(runs).groupby(["kind", "acc", "model"], sort=False) if runs else ()
    for (kind, acc, model), g in groups:
        gains = g["gain"].dropna()
        rising = int((gains >= delta_db).sum())
        if rising:
            verdict = f"still rising ({rising} of {len(g)} seeds)"
        elif len(gains) < len(g):
            verdict = f"undetermined (selected at or before epoch {window} in {len(g) - len(gains)} seeds)"
        else:
            verdict = f"flat (< {delta_db:g} dB)"
        ends = g["end_gain"].dropna()
        end_rising = int((ends >= delta_db).sum())
        end_verdict = (f"still rising ({end_rising} of {len(g)} seeds)" if end_rising
                       else f"flat (< {delta_db:g} dB)" if len(ends) == len(g) else "undetermined")
        finals = g["final_gain"].dropna()
        final_rising = int((finals >= delta_db).sum())
        final_verdict = (f"still rising ({final_rising} of {len(g)} seeds)" if final_rising
                         else f"flat (< {delta_db:g} dB)" if len(finals) == len(g) else "undetermined")
        low, high = int(g["selected"].min()), int(g["selected"].max())
        rows.append({"kind": kind, "acc": acc, "model": model, "seeds": len(g),
                     "selected": str(low) if low == high else f"{low}-{high}",
                     "gain_mean": float(gains.mean()) if len(gains) else float("nan"),
                     "gain_max": float(gains.max()) if len(gains) else float("nan"),
                     "drop_in_window": int(g["drop_in_window"].sum()), "verdict": verdict,
                     "end_gain_max": float(ends.max()) if len(ends) else float("nan"),
                     "end_verdict": end_verdict,
                     "final_gain_max": float(finals.max()) if len(finals) else float("nan"),
                     "final_epochs": int(g["final_epochs"].min()), "final_verdict": final_verdict})
    return pd.DataFrame(rows, columns=["kind", "acc", "model", "seeds", "selected", "gain_mean", "gain_max",
                                       "drop_in_window", "verdict", "end_gain_max", "end_verdict",
                                       "final_gain_max", "final_epochs", "final_verdict"])


def flatness_markdown(table: pd.DataFrame, window: int = protocol.WINDOW, pilot: bool = False) -> list[str]:
    """:func:`flatness` as a markdown table (every row, rising ones included)."""
    if table.empty:
        return ["No finished run yet."]
    epoch = "chosen epoch (rule or cap)" if pilot else "selected epoch(s)"
    # the final-rate columns: runs with a learning-rate drop (not the pilot's constant rate),
    # in tables that have them (a summary.json published before they existed has not)
    final = not pilot and "final_verdict" in table
    lines = [f"| stage kind | acc | model | seeds | {epoch} | gain over the {window} epochs before, "
             "mean (dB) | max (dB) | windows with the lr drop | verdict | gain over the run's last "
             f"{window} epochs, max (dB) | verdict at the end |"
             + (" gain at the final lr from its first epoch, max (dB) | over epochs | verdict at the "
                "final lr |" if final else ""), "|---" * (14 if final else 11) + "|"]
    for _, r in table.iterrows():
        lines.append(f"| {r['kind']} | {r['acc']} | {r['model']} | {r['seeds']} | {r['selected']} | "
                     f"{r['gain_mean']:.3f} | {r['gain_max']:.3f} | "
                     f"{'-' if pilot else r['drop_in_window']} | {r['verdict']} | "
                     f"{r['end_gain_max']:.3f} | {r['end_verdict']} |"
                     + (f" {r['final_gain_max']:.3f} | {r['final_epochs']} | {r['final_verdict']} |"
                        if final else ""))
    return lines
