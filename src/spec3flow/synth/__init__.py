"""Synthetic JWST Stage 2 (``*_cal.fits``) products for spec3flow tests and demos.

- :func:`spec3flow.synth.nirspec.generate_nirspec_mos`  NRS_MSASPEC, 3-shutter nod
- :func:`spec3flow.synth.nirspec.generate_nirspec_fs`   NRS_FIXEDSLIT, S200A1+S200A2 nod
- ``spec3flow.synth.miri_lrs.generate_miri_lrs``         MIR_LRS-FIXEDSLIT
- :mod:`spec3flow.synth.common`  generic helpers (metadata, names, noise, CRs, truth CSV)

CLI: ``python -m spec3flow.synth --mode mos|fs|lrs|all --outdir D``.
Imports are lazy so ``import spec3flow.synth`` stays cheap.
"""

__all__ = ["generate_nirspec_mos", "generate_nirspec_fs", "generate_miri_lrs"]


def __getattr__(name):
    if name in ("generate_nirspec_mos", "generate_nirspec_fs"):
        from . import nirspec

        return getattr(nirspec, name)
    if name == "generate_miri_lrs":
        from . import miri_lrs

        return miri_lrs.generate_miri_lrs
    raise AttributeError(name)
