"""pawtf: predict, explain and serve the Pawpularity of pet photos with Keras 3."""

__version__ = "0.1.0"
