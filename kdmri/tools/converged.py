"""The study's converged results at the end of notebooks 03-07 (``kdmri.tools.converged.converged_results``).

The notebooks train short live runs to show the process; the study (docs/RESULTS.md) trains
the demo protocol to convergence over seeds and publishes one seed's checkpoints
(``python -m kdmri study-publish``: ``kdmri/pretrained/study/<name>.pt``, the package
manifest, and ``summary.json`` beside the checkpoints). :func:`converged_results` shows a
family of those models (``core``: notebooks 03 and 04; ``sft``: 05; ``sr``: 06;
``ablation``: 07):

* ``pretrained="study"`` (default): each published checkpoint (``study-<acc>-<experiment>``,
  sha256 verified) is evaluated here on the demo validation slab (all its slices) and on the
  domain-shift set ``<demo>/shift``, beside the figures the manifest published; then the
  study's comparisons over seeds from ``summary.json`` (mean difference, 95 % interval,
  verdict, both test sets; the fraction of the gap KD recovers), a reconstruction figure of
  the converged models on one validation slice and their held-out learning curves with the
  selected epoch and the learning-rate drop.
* ``pretrained=None`` or ``"none"``: the family is trained here at the study's schedule for
  ``cfg.seed`` (:mod:`kdmri.tools.study` in ``<experiments_root>/study/seed<seed>``, the
  pilot's epochs taken from ``summary.json``, so no pilot runs), and the same table and
  figures are shown from those runs.

The study is on the demo dataset: for another dataset one line says so.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from kdmri.config import Config, load_config
from kdmri.errors import ConfigError, DataError
from kdmri.reporting.published import TEST_SPLITS as TESTS  # test set -> evaluate's split on the demo data
from kdmri.training import study as protocol

#: The accelerations the study trains each family at (docs/RESULTS.md).
FAMILY_ACCS: dict[str, tuple[str, ...]] = {"core": protocol.ACCS, "ablation": ("4x",), "sft": ("4x",),
                                           "sr": ("4x",)}
#: Values of the notebooks' ``pretrained`` parameter that train the family here.
TRAIN_VALUES = (None, "none")
STUDY = "study"
PUBLISH_HINT = ("publish them with `python -m kdmri study-publish --root <study folder> --seed 42` "
                "once the study has run (docs/RESULTS.md), or name a manifest with $KDMRI_MANIFESTS")


def family_experiments(family: str, params: str = "demo_{acc}", acc: str = "4x") -> list[str]:
    """The experiment folders (``kdmri_teacher``, ``sft-at_kdmri_kd``...) of the evaluated
    runs of a study ``family`` (:func:`kdmri.training.study.family_runs`)."""
    from kdmri.training.stages import get_stage

    if family not in FAMILY_ACCS:
        raise ConfigError(f"family {family!r}: expected one of {', '.join(FAMILY_ACCS)}")
    cfg = load_config(params.format(acc=acc))
    out = []
    for run in protocol.family_runs(family, dict(protocol.CAPS)):
        if run.evaluate:
            spec = get_stage(run.stage)
            out.append(spec.experiment(spec.configure(cfg.replace(**run.changes))).name)
    return out


@dataclass
class Model:
    """One converged model shown: its published name, experiment folder, stage, checkpoint,
    the config that evaluates it, its figures here and (when published) the manifest's."""

    name: str
    experiment: str
    stage: str
    checkpoint: Path
    cfg: Config
    figures: dict = field(default_factory=dict)  # {test: {psnr, ssim, nmse}}
    published: dict | None = None
    parameters: int | None = None
    curve: dict | None = None  # a summary.json curve record (kdmri.reporting.published.curves_frame)


@dataclass
class Converged:
    """What :func:`converged_results` showed: the models, their table, the study's
    comparisons over seeds, the fraction of the gap recovered and the figures."""

    source: str  # "study" or "trained"
    models: list[Model]
    table: pd.DataFrame
    comparisons: pd.DataFrame
    gap: dict = field(default_factory=dict)  # {test: fraction}
    figures: dict = field(default_factory=dict)
    summary: Path | None = None


# --------------------------------------------------------------------------- the published models


def _study_entries(manifests) -> dict:
    import kdmri.pretrained as pretrained

    return {n: e for n, e in pretrained.entries(manifests).items() if n.startswith(STUDY + "-")}


def _published_models(cfg: Config, names: dict[str, str], entries: dict, manifests) -> list[Model]:
    import kdmri.pretrained as pretrained

    models = []
    for exp, name in names.items():
        item = entries[name]
        if not isinstance(item.config, dict) or "params" not in item.config or not item.stage:
            raise ConfigError(f"{item.manifest}: checkpoint {name!r}: expected a study entry with 'stage' "
                              "and config {params, changes} (written by study-publish)")
        checkpoint = pretrained.path(name, manifests)  # sha256 verified
        models.append(Model(name, exp, item.stage, checkpoint, cfg, published=item.metrics))
    return models


def _evaluate_published(model: Model, entry, data_root: Path, overrides: dict) -> None:
    from kdmri.reporting.published import evaluation_config, reevaluate

    folder = model.cfg.experiment(model.name, "pretrained")
    model.cfg = evaluation_config(entry, data_root, model.cfg.experiments_path, overrides, model.cfg.device)
    model.figures = reevaluate(entry, data_root, folder, overrides, model.cfg.device)
    model.parameters = json.loads((folder / "test_slab" / "report.json").read_text())["parameters"]


def ensure_shift(cfg: Config) -> Path:
    """``<demo data>/shift``, the domain-shift test set, built when missing (a few seconds)."""
    folder = cfg.data_path / "shift"
    if not folder.is_dir():
        if cfg.data_path.name != "demo":
            raise DataError(f"{folder}: not found; expected the demo's domain-shift set (python -m kdmri "
                            "demo-data builds it)")
        from kdmri.datasets.shift import build_shift

        build_shift(cfg.data_path.parent, verbose=False)
    return folder


# --------------------------------------------------------------------------- trained here


def _read_summary(path: Path | None) -> dict | None:
    return json.loads(path.read_text()) if path is not None and path.is_file() else None


def train_family(cfg: Config, family: str, summary: dict, source: str, jobs: int = 1,
                 calibration: float | None = None) -> tuple[Path, protocol.Settings, list[dict]]:
    """Train ``family`` at ``cfg.acc`` for ``cfg.seed`` at the study's schedule in
    ``<experiments_root>/study/seed<seed>`` (:mod:`kdmri.tools.study`; the pilot's epochs
    seeded from ``summary``, so no pilot runs); says the cost first. Returns the study root,
    its settings and the records (:func:`kdmri.reporting.published.evaluated_runs`) of its units."""
    from kdmri.reporting.published import evaluated_runs
    from kdmri.tools import study

    stored = dict(summary.get("settings") or {})
    base = protocol.Settings.from_dict(stored) if stored else protocol.Settings()
    settings = protocol.Settings(**{**base.__dict__, "source": str(cfg.data_path), "seeds_4x": (cfg.seed,),
                                    "seeds_other": (cfg.seed,), "accs": FAMILY_ACCS["core"],
                                    "families": ("core", "ablation", "sft", "sr")})
    root = (cfg.experiments_path / "study" / f"seed{cfg.seed}").resolve()
    root.mkdir(parents=True, exist_ok=True)
    settings = study.load_settings(root, settings)
    study.prepare_data(root, settings)
    units = study.units_of(root, settings)
    only = study.with_needs(units, [f"seed{cfg.seed}-{cfg.acc}-{family}"])
    kinds = {r.kind for u in units if u.name in only for r in u.runs}
    missing = sorted(kinds - set(summary.get("epochs") or {}))
    if missing:
        raise DataError(f"{source}: no pilot epochs for {', '.join(missing)}; expected the study's "
                        "'epochs' of every stage kind of the family")
    study.seed_pilot(root, settings, summary["epochs"], str(source))
    units = study.units_of(root, settings)  # at the seeded epochs
    text, hours = study.plan(root, settings, calibration or study.calibrate(), [cfg.seed], only)
    print(f"training the {family} family at the study's schedule (seed {cfg.seed}, {cfg.acc}): about "
          f"{hours:.2f} h in one process on this machine; it resumes where it stops\n{text}", flush=True)
    results = study.run_study(root, settings, [cfg.seed], jobs, in_process=jobs == 1, only=only)
    failed = [r["unit"] for r in results if not r["ok"]]
    if failed:
        raise DataError(f"{root}: unit(s) {', '.join(failed)} failed (logs: {root / 'logs'})")
    return root, settings, evaluated_runs(root, settings, [u for u in units if u.name in only])


def _trained_models(cfg: Config, names: dict[str, str], records: list[dict], entries: dict) -> list[Model]:
    from kdmri.checkpoint import BEST
    from kdmri.evaluation.evaluate import report_dir
    from kdmri.reporting.published import mean_metrics

    by_name = {r["name"]: r for r in records}
    models = []
    for exp, name in names.items():
        if name not in by_name:
            raise ConfigError(f"{exp}: not a run of the trained units (runs: "
                              f"{', '.join(sorted(by_name))})")
        rec = by_name[name]
        folder = rec["experiment"]
        published = entries[name].metrics if name in entries else None
        run_cfg = rec["cfg"].replace(data_root=str(cfg.data_path), max_val_slices=None, device=cfg.device)
        model = Model(name, exp, rec["run"].stage, folder / BEST, run_cfg, published=published)
        for test in TESTS:
            model.figures[test] = mean_metrics(report_dir(folder, test))
        model.parameters = json.loads((report_dir(folder, "slab") / "report.json").read_text())["parameters"]
        log = pd.read_csv(folder / "train_log.csv")
        model.curve = {"kind": rec["run"].kind, "acc": rec["unit"].acc, "seed": rec["unit"].seed,
                       "model": exp, "score": "val_psnr", "values": [float(v) for v in log["val_psnr"]],
                       "lr_step": rec["run"].lr_step, "selected": protocol.selected_epoch(log)}
        models.append(model)
    return models


# --------------------------------------------------------------------------- tables and figures


def model_table(models: Sequence[Model]) -> pd.DataFrame:
    """One row per model: parameters, PSNR / SSIM on each test set here and as published."""
    rows = []
    for m in models:
        row = {"model": m.experiment, "parameters": f"{m.parameters:,}" if m.parameters else ""}
        for test in TESTS:
            here, pub = m.figures.get(test, {}), (m.published or {}).get(test, {})
            for metric, digits in (("psnr", 2), ("ssim", 4)):
                label = f"{test} {metric.upper()}"
                row[label] = round(here[metric], digits) if metric in here else None
                row[f"{label} published"] = round(pub[metric], digits) if metric in pub else None
        rows.append(row)
    return pd.DataFrame(rows).set_index("model")


def comparison_table(summary: dict | None, labels: Iterable[str], acc: str) -> pd.DataFrame:
    """The study's comparisons ``labels`` at ``acc`` on both test sets from ``summary.json``."""
    columns = ["comparison", "test set", "seeds", "a - b (dB)", "95 % CI over seeds", "verdict"]
    rows = []
    for test in TESTS:
        found = {r["comparison"]: r for r in ((summary or {}).get("tests", {}).get(test, {})
                                              .get("comparisons", [])) if r["acc"] == acc}
        for label in labels:
            r = found.get(label)
            if r is None:
                rows.append([label, test, 0, None, "not in the study's summary", ""])
                continue
            rows.append([label, test, r["seeds"], round(r["difference"], 3),
                         f"[{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]", r["verdict"]])
    return pd.DataFrame(rows, columns=columns)


def reconstructions(models: Sequence[Model]) -> dict:
    """``{label: image}`` of the converged models on the middle slice of the demo validation
    slab, with the input (ZF or LR) and the target, for
    :func:`kdmri.reporting.plots.reconstruction_figure`."""
    from kdmri.checkpoint import load_model
    from kdmri.tutorial import forward, image, validation_slice

    sr = models[0].stage.startswith("sr-")
    batch = validation_slice(models[0].cfg, task="sr" if sr else "recon")
    images = {"LR" if sr else "ZF": image(batch["input"]), "target": image(batch["target"])}
    for m in models:
        model, _ = load_model(m.checkpoint, m.cfg.torch_device())
        images[m.experiment] = image(forward(model, batch, features=False).image)
    return images


# --------------------------------------------------------------------------- the notebook call


def _say(text: str) -> None:
    print(text, flush=True)


def converged_results(cfg: Config, family: str, pretrained: str | None = STUDY,
                      models: Sequence[str] | None = None, comparisons: Sequence[str] = (),
                      gap: bool = False, manifests: Iterable[Path | str] | None = None,
                      show: bool = True, calibration: float | None = None) -> Converged | None:
    """Show the study's converged ``family`` at ``cfg.acc`` (see the module docstring):
    ``models`` (experiment folders; default the family's evaluated runs), the study's
    ``comparisons`` (labels of :data:`kdmri.reporting.study.COMPARISONS`) and, with ``gap``,
    the fraction of the teacher - student gap KD recovers. ``pretrained``: ``"study"`` (the
    published checkpoints) or ``None``/``"none"`` (train them here). Returns what it showed,
    or ``None`` after one line saying why nothing is shown (another dataset; nothing published)."""
    if family not in FAMILY_ACCS:
        raise ConfigError(f"family {family!r}: expected one of {', '.join(FAMILY_ACCS)}")
    key = pretrained.lower() if isinstance(pretrained, str) else pretrained
    if key not in (STUDY, *TRAIN_VALUES):
        raise ConfigError(f"pretrained={pretrained!r}: expected 'study' (the study's published checkpoints) "
                          "or None / 'none' (train them at the study's schedule)")
    if cfg.dataset != "demo":
        _say(f"The study is on the demo dataset; this run is on {cfg.dataset}: no converged results "
             "to show (set dataset = 'demo').")
        return None
    models = list(models or family_experiments(family))
    names = {exp: f"{STUDY}-{cfg.acc}-{exp}" for exp in models}
    entries = _study_entries(manifests)
    if not entries:
        _say(f"The study's checkpoints are not published in this copy yet: {PUBLISH_HINT}.")
        return None
    if cfg.acc not in FAMILY_ACCS[family]:
        _say(f"The study trains the {family} family at {', '.join(FAMILY_ACCS[family])} only, not at "
             f"{cfg.acc}: nothing published to show (set acc = '4x').")
        return None
    have = [n for n in names.values() if n in entries]
    if not have:
        accs = sorted({e.acc for e in entries.values() if e.acc})
        _say(f"The study's {family} models are not published at {cfg.acc} in this copy (published "
             f"accelerations: {', '.join(accs) or 'none'}); expected {', '.join(names.values())}.")
        return None
    from kdmri.tutorial import ensure_data

    ensure_data(cfg)
    ensure_shift(cfg)
    import kdmri.pretrained as pk

    first = pk.path(have[0], manifests)
    summary_path = first.parent / "summary.json"
    summary = _read_summary(summary_path)
    if key == STUDY:
        missing = [n for n in names.values() if n not in entries]
        if missing:
            listed = ", ".join(str(p) for p in pk.manifest_files(manifests))
            raise ConfigError(f"pretrained {missing[0]!r}: not in the manifests ({listed}); expected every "
                              f"model of the study's {family} family at {cfg.acc}: "
                              f"{', '.join(names.values())}")
        overrides = ((summary or {}).get("settings") or {}).get("overrides") or {}
        shown = _published_models(cfg, names, entries, manifests)
        for m in shown:
            _evaluate_published(m, entries[m.name], cfg.data_path, overrides)
            m.curve = (summary or {}).get("curves", {}).get(m.name)
        source = STUDY
    else:
        if summary is None:
            _say(f"No summary.json beside {first}: the study's pilot epochs are unknown here; run the "
                 "study itself (python -m kdmri study, docs/RESULTS.md).")
            return None
        _, _, records = train_family(cfg, family, summary, str(summary_path), calibration=calibration)
        shown = _trained_models(cfg, names, records, entries)
        source = "trained"
    return _show(cfg, shown, summary, summary_path, comparisons, gap, source, show)


def _formatted(table: pd.DataFrame) -> pd.DataFrame:
    """Numbers as shown: PSNR and differences with 2 decimals (3 for differences), SSIM with 4."""
    def cell(column, v):
        if v is None or (isinstance(v, float) and pd.isna(v)):
            return "—"
        if isinstance(v, float):
            return f"{v:.4f}" if "SSIM" in column else f"{v:+.3f}" if "a - b" in column else f"{v:.2f}"
        return v
    return pd.DataFrame({c: [cell(c, v) for v in table[c]] for c in table.columns}, index=table.index)


def _show(cfg: Config, shown: list[Model], summary: dict | None, summary_path: Path,
          comparisons: Sequence[str], gap: bool, source: str, show: bool) -> Converged:
    from kdmri.reporting import plots
    from kdmri.reporting.published import curves_frame
    from kdmri.reporting.reports import to_markdown
    from kdmri.reporting.saving import save_figure
    from kdmri.reporting.studyfigs import learning_curves

    table = model_table(shown)
    comp = comparison_table(summary, comparisons, cfg.acc)
    gaps = {t: (summary or {}).get("tests", {}).get(t, {}).get("gap_recovered", {}).get(cfg.acc)
            for t in TESTS} if gap else {}
    figures = {"reconstructions": plots.reconstruction_figure(reconstructions(shown))}
    curves = curves_frame(m.curve for m in shown if m.curve)
    if len(curves):
        figures["learning_curves"] = learning_curves(curves, "held-out score per epoch of the models shown")
    for name, fig in figures.items():
        save_figure(fig, f"converged_{name}")
    result = Converged(source, shown, table, comp, gaps, figures, summary_path if summary else None)
    if not show:
        return result
    from IPython.display import Markdown, display

    what = ("the study's published checkpoints (seed {s}), evaluated here".format(
        s=(summary or {}).get("published_seed", "?")) if source == STUDY
        else f"the runs trained here at the study's schedule (seed {cfg.seed})")
    parts = [f"**Converged models at {cfg.acc}**: {what}; PSNR (dB) / SSIM on the demo validation slab "
             "(all slices) and the domain-shift set, and the figures published with them.", "",
             to_markdown(_formatted(table))]
    if comparisons:
        parts += ["", "**The study's comparisons over seeds** (summary.json; a - b, 95 % t interval over "
                  "seeds):" if summary else f"*No summary.json beside the checkpoints ({summary_path}).*"]
        if summary:
            parts += ["", to_markdown(_formatted(comp.set_index("comparison")))]
    if gap:
        parts += ["", "Fraction of the teacher - student gap KD recovers (ratio of the mean differences): "
                  + ", ".join(f"{t} {v:.2f}" if v is not None else f"{t} —" for t, v in gaps.items())]
    display(Markdown("\n".join(parts)))
    for fig in figures.values():
        display(fig)
    return result

