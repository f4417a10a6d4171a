"""`labkit tune`: the cheapest configuration that meets an SLO, searched on the simulator at
scale (Dask), cross-checked by a closed-form model, and checked live (notebook 11)."""
