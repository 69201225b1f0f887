"""File names and step chains of every job: what the Snakemake rules declare.

The rules stay declarative: each asks this module for its inputs, outputs and
step arguments.  Which steps run follows calwebb_spec3's control flow for slit
modes: master_background only when the association has background members,
exp_to_source for multi-source exposures, then per source outlier_detection ->
adaptive_trace_model -> pixel_replace -> resample_spec -> extract_1d, or
extract_1d -> combine_1d when resampling is skipped.  A skipped step has no job;
the next active step runs it (as skipped) first, so status keywords match.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from spec3flow.plan import Plan, PlanError, Product, Source, cube_jobs

#: Per-source steps in pipeline order (slit modes).
SOURCE_STEPS = ("outlier_detection", "adaptive_trace_model", "pixel_replace", "resample_spec")
#: Steps whose jwst default is ``skip = True``.
SKIPPED_BY_DEFAULT = frozenset({"adaptive_trace_model", "pixel_replace"})
#: Steps that save per-exposure models with invariant_filename (names stay the exposure's).
PER_EXPOSURE_SAVERS = ("outlier_detection", "adaptive_trace_model", "pixel_replace")
#: A cube is split by exposure when its exposures feed it at least this many detector pixels
#: each on average: ~8 s of cube_build per exposure (7-9 us per pixel measured) against ~2.5 s
#: that a partial job adds (reading the cube's exposures, saving its sums). A realistic
#: NIRSpec IFU exposure feeds ~2 million, a MIRI MRS one ~0.5 million to each band's cube.
CUBE_PARTIAL_MIN_PIXELS = 1_000_000
#: Jobs that run part of a jwst step under a name of their own.
JWST_STEP_OF = {"cube_build_partial": "cube_build"}
#: Per-exposure steps whose outputs are workflow intermediates (the pipeline keeps them in memory).
INTERMEDIATE_STEPS = ("adaptive_trace_model", "pixel_replace")


@dataclass
class StepJob:
    """Everything one job needs: the rule's input, output and params come from here."""

    step: str
    key: str  # unique per step: the source stem or the association name
    asn: str
    inputs: list[str]
    outputs: list[str]
    output_stem: str | None = None
    run_before: list[str] = field(default_factory=list)
    depends: list[str] = field(default_factory=list)  # files read through the asn
    # In-memory file names of per-exposure inputs: steps saving with invariant_filename
    # (crf) leave the pipeline's models named after the exposure, not the saved file.
    input_names: list[str] = field(default_factory=list)
    pars: str = ""  # CRDS step parameters of the association (see execute.crds_step_pars)
    product_digest: str = ""  # the association product's planned content (rerun trigger)
    # cube_build only: detector pixels feeding the cubes (its memory estimate grows with them).
    cube_pixels: int = 0
    # Parameters of its own step this job adds to the config's (a one-band cube_build's band).
    params: dict = field(default_factory=dict)

    @property
    def jwst_step(self) -> str:
        """The calwebb_spec3 step this job runs (or part of), whose parameters it takes."""
        return JWST_STEP_OF.get(self.step, self.step)


@dataclass(frozen=True)
class PlotBatch:
    """One quick-look job: the PNGs of up to ``qa.plots_per_job`` final products.

    A job per product cost Snakemake ~1 ms to plan and ~30 ms to run, and a quarter of
    a 10,000-source program's jobs; one process also pays the matplotlib import once."""

    index: int
    products: tuple[str, ...]  # the .fits files, in plan order
    pngs: tuple[str, ...]  # one per product

    @property
    def rule(self) -> str:
        return f"plot_batch_{self.index:04d}"

    def plot_args(self) -> str:
        """``qa plot`` arguments, shell-quoted: PRODUCT PNG PRODUCT PNG ..."""
        import shlex

        return shlex.join(path for pair in zip(self.products, self.pngs) for path in pair)

    def suffixed_pngs(self) -> list[tuple[str, str]]:
        """(PNG, product suffix) pairs: the report files each PNG under its suffix."""
        return [(png, png[: -len(".png")].rsplit("_", 1)[-1]) for png in self.pngs]


class Layout:
    """Where each kind of file lives under ``results_dir``."""

    def __init__(self, results_dir: str):
        self.root = results_dir.rstrip("/")

    def asn(self, product: Product) -> str:
        return f"{self.root}/asn/{product.asn_name}.json"

    def product(self, name: str) -> str:
        return f"{self.root}/products/{name}"

    def intermediate(self, product: Product, step: str, name: str) -> str:
        return f"{self.root}/intermediate/{product.asn_name}/{step}/{name}"

    def pars(self, product: Product) -> str:
        return f"{self.root}/asn/{product.asn_name}.pars.json"

    def source_intermediate(self, stem: str, step: str) -> str:
        return f"{self.root}/intermediate/sources/{stem}_{step}.fits"

    def log(self, rule: str, key: str) -> str:
        return f"{self.root}/logs/{rule}/{key}.log"

    def benchmark(self, rule: str, key: str) -> str:
        return f"{self.root}/benchmarks/{rule}/{key}.tsv"

    def plot(self, name: str) -> str:
        return f"{self.root}/qa/{name}.png"


def product_digest(product: Product) -> str:
    """A short fingerprint of what an association product is made of (members, names)."""
    import hashlib
    import json

    content = [product.name, product.exp_type, product.moving_target,
               [os.path.basename(p) for p in product.science],
               [os.path.basename(p) for p in product.background],
               [(s.stem, s.exposures) for s in product.sources]]
    return hashlib.sha1(json.dumps(content).encode()).hexdigest()[:12]


def is_skipped(steps_config: dict, step: str) -> bool:
    return bool(steps_config.get(step, {}).get("skip", step in SKIPPED_BY_DEFAULT))


def exposure_stem(path: str) -> str:
    """``jw..._nrs1_cal.fits`` -> ``jw..._nrs1``."""
    name = os.path.basename(path)
    return name.rsplit("_", 1)[0]


class Dag:
    """The jobs of a plan under a configuration."""

    def __init__(self, plan: Plan, results_dir: str, steps_config: dict,
                 cube_partial_min_pixels: int | None = CUBE_PARTIAL_MIN_PIXELS):
        self.plan = plan
        self.layout = Layout(results_dir)
        self.steps = steps_config or {}
        # None: no cube_build_partial jobs (see _add_cube_build)
        self.cube_partial_min_pixels = cube_partial_min_pixels
        self.sources = plan.source_index()
        self.jobs: dict[tuple[str, str], StepJob] = {}
        self.final: list[str] = []
        self._ifu_jobs: list[StepJob] = []
        for product in plan.products:
            first = len(self.jobs)
            self._plan_product(product)
            digest = product_digest(product)
            for job in list(self.jobs.values())[first:]:
                job.pars = self.layout.pars(product)
                job.product_digest = digest

    # ------------------------------------------------------------------ building
    def skipped(self, step: str) -> bool:
        return is_skipped(self.steps, step)

    def _add(self, job: StepJob, final: bool = False) -> StepJob:
        self.jobs[(job.step, job.key)] = job
        if final:
            self.final.extend(job.outputs)
        return job

    def _plan_product(self, product: Product) -> None:
        lay = self.layout
        asn = lay.asn(product)
        members = product.science + product.background
        pending: list[str] = []  # skipped steps the next job must run first
        exposures: list[str] = []  # data files the per-source chain starts from ([] = the asn)
        if product.moving_target:
            # assign_mtwcs rewrites every member's WCS; later jobs read the rewritten
            # members through an association of the same name beside them.
            derived = lay.intermediate(product, "assign_mtwcs", os.path.basename(asn))
            outputs = [lay.intermediate(product, "assign_mtwcs", os.path.basename(p)) for p in members]
            self._add(StepJob("assign_mtwcs", product.asn_name, asn, [], outputs + [derived],
                              depends=members))
            asn, members = derived, outputs
        if product.background:
            if self.skipped("master_background"):
                pending.append("master_background")
            else:
                outputs = [lay.intermediate(product, "master_background", os.path.basename(p))
                           for p in product.science]
                self._add(StepJob("master_background", product.asn_name, asn, [], outputs,
                                  depends=members))
                exposures = outputs
        if product.wfss:
            self._plan_wfss(product, asn, members, exposures, pending)
        elif product.ifu:
            self._plan_ifu(product, asn, members, exposures, pending)
        elif product.soss:
            self._plan_soss(product, asn, members, exposures, pending)
        elif product.multisource:
            outputs = [lay.product(f"{s.stem}_cal.fits") for s in product.sources]
            self._add(StepJob("exp_to_source", product.asn_name, asn, exposures, outputs,
                              run_before=pending, depends=members), final=True)
            for source in product.sources:
                self._plan_source(product, source, [lay.product(f"{source.stem}_cal.fits")], [], asn)
        else:
            self._plan_source(product, product.sources[0], exposures, pending, asn, depends=members)

    def _plan_source(self, product: Product, source: Source, inputs: list[str], pending: list[str],
                     asn: str, depends: list[str] = ()) -> None:
        lay = self.layout
        pending = list(pending)
        current = inputs
        previous = "master_background" if inputs else None
        resampled = False
        for step in SOURCE_STEPS:
            if self.skipped(step):
                pending.append(step)
                continue
            if step == "outlier_detection":
                outputs = self._crf_names(product, source)
                final = True
            elif step in INTERMEDIATE_STEPS:
                outputs = ([lay.source_intermediate(source.stem, step)] if product.multisource
                           else [lay.intermediate(product, step, os.path.basename(p))
                                 for p in product.science])
                final = False
            else:  # resample_spec
                outputs = [lay.product(f"{source.stem}_s2d.fits")]
                final = True
                resampled = True
            self._add(StepJob(step, source.stem, asn, current, outputs, source.stem, pending,
                              list(depends) if not current else [],
                              self._exposure_names(product, current, previous)), final=final)
            current, pending, previous = outputs, [], step
        tail = ["extract_1d"] if resampled else ["extract_1d", "combine_1d"]
        if not resampled and self.skipped("extract_1d") and not self.skipped("combine_1d"):
            raise PlanError("config steps: with resample_spec skipped, combine_1d combines "
                            "extract_1d's spectra; skip combine_1d too or run extract_1d")
        for step in tail:
            if self.skipped(step):
                pending.append(step)
                continue
            if step == "combine_1d":
                outputs = [lay.product(f"{source.stem}_c1d.fits")]
            elif resampled:
                outputs = [lay.product(f"{source.stem}_x1d.fits")]
            else:  # one spectrum per exposure, indexed as stpipe names container members
                n_exposures = len(source.exposures)
                outputs = [lay.product(f"{source.stem}_{i}_x1d.fits") for i in range(n_exposures)]
            self._add(StepJob(step, source.stem, asn, current, outputs, source.stem, pending,
                              list(depends) if not current else [],
                              self._exposure_names(product, current, previous)), final=True)
            current, pending, previous = outputs, [], step

    def _plan_wfss(self, product: Product, asn: str, members: list[str], exposures: list[str],
                   pending: list[str]) -> None:
        """WFSS: per-source extract_1d and combine_1d kept as intermediates (the pipeline
        saves none of them), then one job gathers every source into <product>_x1d/_c1d."""
        lay = self.layout
        for step in ("extract_1d", "combine_1d"):
            if self.skipped(step):
                raise PlanError(f"config steps.{step}.skip: WFSS products are made of {step}'s "
                                "per-source results; it cannot be skipped for "
                                f"{product.exp_type} ({product.asn_name})")
        cal = [lay.source_intermediate(s.stem, "cal") for s in product.sources]
        self._add(StepJob("exp_to_source", product.asn_name, asn, exposures, cal,
                          run_before=pending, depends=members))
        x1ds, c1ds = [], []
        for source, source_cal in zip(product.sources, cal):
            current, before = [source_cal], []
            if self.skipped("pixel_replace"):
                before.append("pixel_replace")
            else:
                replaced = [lay.source_intermediate(source.stem, "pixel_replace")]
                self._add(StepJob("pixel_replace", source.stem, asn, current, replaced, source.stem))
                current = replaced
            x1d, c1d = lay.source_intermediate(source.stem, "x1d"), lay.source_intermediate(source.stem, "c1d")
            self._add(StepJob("extract_1d", source.stem, asn, current, [x1d], source.stem, before))
            self._add(StepJob("combine_1d", source.stem, asn, [x1d], [c1d], source.stem))
            x1ds.append(x1d)
            c1ds.append(c1d)
        outputs = [lay.product(f"{product.name}_x1d.fits"), lay.product(f"{product.name}_c1d.fits")]
        self._add(StepJob("wfss_gather", product.asn_name, asn, x1ds + c1ds, outputs, product.name,
                          depends=members), final=True)

    def _plan_soss(self, product: Product, asn: str, members: list[str], exposures: list[str],
                   pending: list[str]) -> None:
        """NIRISS SOSS: [pixel_replace] -> extract_1d (kept in memory by the pipeline: an
        intermediate here) -> photom, saved as <product>_x1d -> combine_1d, <product>_c1d."""
        lay = self.layout
        for step in ("extract_1d", "photom"):
            if self.skipped(step):
                raise PlanError(f"config steps.{step}.skip: {product.exp_type} products are made by "
                                f"{step}; it cannot be skipped ({product.asn_name})")
        key = product.sources[0].stem
        current, before = list(exposures), list(pending)
        depends = [] if current else list(members)
        if self.skipped("pixel_replace"):
            before.append("pixel_replace")
        else:
            replaced = [lay.intermediate(product, "pixel_replace", os.path.basename(p))
                        for p in product.science]
            self._add(StepJob("pixel_replace", key, asn, current, replaced, key, before, depends,
                              self._exposure_names(product, current, "master_background")))
            current, before, depends = replaced, [], []
        spectra = [lay.intermediate(product, "extract_1d", f"{key}_extract_1d.fits")]
        self._add(StepJob("extract_1d", key, asn, current, spectra, key, before, depends,
                          self._exposure_names(product, current, "pixel_replace")))
        x1d = [lay.product(f"{key}_x1d.fits")]
        self._add(StepJob("photom", key, asn, spectra, x1d, key), final=True)
        if self.skipped("combine_1d"):
            return
        self._add(StepJob("combine_1d", key, asn, x1d, [lay.product(f"{key}_c1d.fits")], key),
                  final=True)

    def soss_jobs(self) -> list[StepJob]:
        """extract_1d, photom and combine_1d of SOSS products (one each per association)."""
        return [job for (step, key), job in self.jobs.items()
                if step in ("extract_1d", "photom", "combine_1d") and key in self.sources
                and self.sources[key][0].soss]

    def _plan_ifu(self, product: Product, asn: str, members: list[str], exposures: list[str],
                  pending: list[str]) -> None:
        """IFU (NRS_IFU, MIR_MRS), one chain per association as Spec3Pipeline runs it:
        outlier_detection (mode ifu; one crf per exposure) -> [adaptive_trace_model,
        pixel_replace] -> cube_build (the s3d files, named at parse time by plan.ifu_cubes;
        default band cubes one job per band, see plan.cube_jobs, else one job for all) ->
        extract_1d (per cube job, or one job for the cube container) -> for MIR_MRS
        spectral_leak on all spectra, which then writes the x1d files while extract_1d's
        spectra stay intermediates."""
        from spec3flow.plan import ifu_cubes

        lay = self.layout
        source = product.sources[0]
        key = source.stem
        cubes = ifu_cubes(product, self.steps.get("cube_build") or {})
        pending = list(pending)
        current, previous = exposures, ("master_background" if exposures else None)
        for step in PER_EXPOSURE_SAVERS:
            if self.skipped(step):
                pending.append(step)
                continue
            if step == "outlier_detection":
                outputs, final = self._crf_names(product, source), True
            else:
                outputs = [lay.intermediate(product, step, os.path.basename(p)) for p in product.science]
                final = False
            self._add(StepJob(step, key, asn, current, outputs, key, pending,
                              list(members) if not current else [],
                              self._exposure_names(product, current, previous)), final=final)
            current, pending, previous = outputs, [], step
        if self.skipped("cube_build"):
            # Spec3Pipeline: "Resampling was not completed. Skipping extract_1d."
            if self.skipped("outlier_detection"):
                raise PlanError(f"config steps: with outlier_detection and cube_build skipped, "
                                f"Spec3Pipeline saves nothing for {product.exp_type} "
                                f"({product.asn_name})")
            return
        names = self._exposure_names(product, current, previous)
        depends = list(members) if not current else []
        s3d = [lay.product(f"{cube.stem}_s3d.fits") for cube in cubes]
        # A NIRSpec band is chosen by its exposures: only files of an earlier job can be picked.
        split = (cube_jobs(product, cubes, self.steps.get("cube_build"))
                 if current or product.exp_type == "MIR_MRS" else None)
        # The names cube_build's models have: what partial-sums files are named after.
        model_names = names or [os.path.basename(p) for p in current or product.science]
        if split is None:  # one job builds every cube
            self._add_cube_build(product, StepJob(
                "cube_build", key, asn, current, s3d, product.name, pending, depends, names,
                cube_pixels=sum(cube.npix for cube in cubes)),
                [model_names[i] for i in sorted({i for cube in cubes for i in cube.members})])
        else:  # one job per band, each reading the exposures that cover it
            for part, path in zip(split, s3d):
                pick = list(part.members)
                self._add_cube_build(product, StepJob(
                    "cube_build", f"{key}/{part.cube.stem}", asn, [current[i] for i in pick] if current else [],
                    [path], product.name, pending, depends, [names[i] for i in pick] if names else [],
                    cube_pixels=part.cube.npix, params=part.params),
                    [model_names[i] for i in part.cube.members])
        x1d = [lay.product(f"{cube.stem}_x1d.fits") for cube in cubes]
        leak = product.exp_type == "MIR_MRS" and not self.skipped("spectral_leak")
        if not self.skipped("extract_1d"):
            spectra = ([lay.intermediate(product, "extract_1d", os.path.basename(p)) for p in x1d]
                       if leak else x1d)
            if split is None:
                self._add_ifu(StepJob("extract_1d", key, asn, s3d, spectra, product.name), final=not leak)
            else:  # extract_1d treats each cube of the container on its own
                for cube, cube_path, spectrum in zip(cubes, s3d, spectra):
                    self._add_ifu(StepJob("extract_1d", f"{key}/{cube.stem}", asn, [cube_path], [spectrum],
                                          product.name), final=not leak)
            if leak:
                self._add_ifu(StepJob("spectral_leak", key, asn, spectra, x1d, product.name), final=True)
        elif leak:  # the pipeline hands the cubes to spectral_leak, which saves them as x1d
            self._add_ifu(StepJob("spectral_leak", key, asn, s3d, x1d, product.name, ["extract_1d"]),
                          final=True)

    def _add_cube_build(self, product: Product, job: StepJob, feeding: list[str]) -> None:
        """A cube_build job. Where more than one exposure feeds its cubes (``feeding``: their
        in-memory names) with enough pixels each, first one cube_build_partial job per such
        exposure (see spec3flow.cube_partials), whose files the cube_build job adds up."""
        from spec3flow.cube_partials import partial_name

        # (coord_system=internal_cal, whose loop cannot be split, takes one exposure a cube.)
        if (self.cube_partial_min_pixels is not None and len(feeding) > 1
                and job.cube_pixels >= self.cube_partial_min_pixels * len(feeding)):
            folder = job.key.rsplit("/", 1)[-1]  # the cube's stem, or the product's
            partials = []
            for name in feeding:
                output = self.layout.intermediate(product, "cube_build", f"{folder}/{partial_name(name)}")
                self._add_ifu(StepJob("cube_build_partial", f"{job.key}/{exposure_stem(name)}", job.asn,
                                      job.inputs, [output], job.output_stem, job.run_before, job.depends,
                                      job.input_names, cube_pixels=max(1, job.cube_pixels // len(feeding)),
                                      params=job.params))
                partials.append(output)
            job.inputs = job.inputs + partials
        self._add_ifu(job, final=True)

    def _add_ifu(self, job: StepJob, final: bool = False) -> StepJob:
        self._ifu_jobs.append(job)
        return self._add(job, final)

    @staticmethod
    def _exposure_names(product: Product, inputs: list[str], previous: str | None) -> list[str]:
        """Names the pipeline's in-memory models keep after steps that save with
        invariant_filename (or that never save): the exposure names."""
        if (product.multisource or len(inputs) != len(product.science)
                or previous not in ("master_background", *PER_EXPOSURE_SAVERS)):
            return []
        return [os.path.basename(p) for p in product.science]

    def _crf_names(self, product: Product, source: Source) -> list[str]:
        if product.multisource:
            return [self.layout.product(f"{source.stem}_crf.fits")]
        return [self.layout.product(f"{exposure_stem(p)}_{product.asn_id}_crf.fits")
                for p in product.science]

    # ------------------------------------------------------------------ queries
    def job(self, step: str, key: str) -> StepJob:
        try:
            return self.jobs[(step, key)]
        except KeyError:
            raise KeyError(f"no {step} job for {key!r} in the plan") from None

    def jobs_of(self, step: str) -> list[StepJob]:
        return [job for (s, _), job in self.jobs.items() if s == step]

    def ifu_jobs(self) -> list[StepJob]:
        """cube_build, extract_1d and spectral_leak jobs of IFU products (per association,
        or per cube where cube_build's bands run as separate jobs)."""
        return list(self._ifu_jobs)

    def per_exposure_jobs(self) -> list[StepJob]:
        """Per-source steps of single-source products: one output per exposure."""
        return [job for (step, key), job in self.jobs.items()
                if step in ("outlier_detection", *INTERMEDIATE_STEPS)
                and not self.sources[key][0].multisource]

    def keys(self, step: str) -> list[str]:
        return [key for (s, key) in self.jobs if s == step]

    def products_with(self, step: str) -> list[Product]:
        names = set(self.keys(step))
        return [p for p in self.plan.products if p.asn_name in names]

    def plotted_products(self) -> list[str]:
        """Basenames (without .fits) of final products that get a quick-look plot."""
        return [Path(f).name[: -len(".fits")] for f in self.final
                if f.endswith(("_s2d.fits", "_s3d.fits", "_x1d.fits", "_c1d.fits"))]

    def plot_batches(self, per_job: int) -> list[PlotBatch]:
        """The plotted products in plan order, ``per_job`` to a job (a source's s2d and x1d
        are neighbours, so mostly in the same job)."""
        if per_job < 1:
            raise ValueError(f"qa.plots_per_job must be at least 1, not {per_job}")
        names = self.plotted_products()
        return [PlotBatch(index=k + 1,
                          products=tuple(self.layout.product(f"{n}.fits") for n in chunk),
                          pngs=tuple(self.layout.plot(n) for n in chunk))
                for k, chunk in enumerate(names[i:i + per_job]
                                          for i in range(0, len(names), per_job))]

    def unresampled_extract_groups(self) -> dict[int, list[str]]:
        """Source stems whose extract_1d writes one x1d per exposure, by exposure count."""
        groups: dict[int, list[str]] = {}
        for job in self.jobs_of("extract_1d"):
            if not job.outputs[0].endswith("_0_x1d.fits") or "/intermediate/" in job.outputs[0]:
                continue
            groups.setdefault(len(job.outputs), []).append(job.key)
        return groups

    def job_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for step, _ in self.jobs:
            counts[step] = counts.get(step, 0) + 1
        return counts
