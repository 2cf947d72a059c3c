"""Execution: stream capture files into flows on one core, every core, a cache or a Dask cluster."""
