"""spec3flow: JWST calwebb_spec3 as a Snakemake DAG of file-to-file step jobs."""

__version__ = "0.1.0"
