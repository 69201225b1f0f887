"""compare_files: arrays exactly; keywords exactly unless a float tolerance is asked for."""

from __future__ import annotations

import numpy as np
from astropy.io import fits

from spec3flow.compare import compare_files


def _write(path, dec: float, data=None):
    hdu = fits.PrimaryHDU(np.zeros((2, 2)) if data is None else data)
    hdu.header["SLIT_DEC"] = dec
    hdu.writeto(path)
    return path


def test_float_keywords_exact_by_default_within_rtol_when_asked(tmp_path):
    a = _write(tmp_path / "a.fits", -27.8084102526461)
    b = _write(tmp_path / "b.fits", -27.80841025264608)
    c = _write(tmp_path / "c.fits", -27.80841)
    assert compare_files(a, b).keyword_diffs
    assert compare_files(a, b, keyword_rtol=1e-14).keyword_diffs == []
    assert compare_files(a, c, keyword_rtol=1e-14).keyword_diffs


def test_arrays_stay_exact_with_a_keyword_tolerance(tmp_path):
    a = _write(tmp_path / "a.fits", 1.0, np.array([[1.0, 2.0]]))
    b = _write(tmp_path / "b.fits", 1.0, np.array([[1.0, 2.0 + 1e-15]]))
    assert not compare_files(a, b, keyword_rtol=1e-14).arrays_equal
