"""SpRAy Studio's offline pipeline: LRP heatmaps, spectral analysis and the run store."""

__version__ = "0.1.0"
