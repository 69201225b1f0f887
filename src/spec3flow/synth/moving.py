"""Turn a synthetic program into a moving-target program (TARGTYPE MOVING).

Spec3Pipeline runs assign_mtwcs first when the first exposure's target type is
MOVING; the step needs each science exposure's moving-target position
(``wcsinfo.mt_ra/mt_dec``, per slit for multi-slit exposures).  The target here
drifts by a fixed amount per exposure, as a solar-system body would.
"""

from __future__ import annotations

from pathlib import Path

from spec3flow.synth.common import save_model_fast


def mark_moving_target(cal_paths: list[Path], drift_arcsec: float = 0.05) -> list[Path]:
    """Rewrite each cal file as a moving-target exposure; returns the paths."""
    from stdatamodels.jwst import datamodels

    for index, path in enumerate(sorted(Path(p) for p in cal_paths)):
        with datamodels.open(path) as model:
            model.meta.target.type = "MOVING"
            shift = index * drift_arcsec / 3600.0
            ra0, dec0 = model.meta.target.ra, model.meta.target.dec
            wcsinfos = ([slit.meta.wcsinfo for slit in model.slits]
                        if isinstance(model, datamodels.MultiSlitModel) else [model.meta.wcsinfo])
            for wcsinfo in wcsinfos:
                wcsinfo.mt_ra = ra0 + shift
                wcsinfo.mt_dec = dec0 + shift
            save_model_fast(model, path)
    return sorted(Path(p) for p in cal_paths)
