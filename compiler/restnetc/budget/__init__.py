"""Budget model: what a stitched variant costs (params, MACs/FLOPs)."""
