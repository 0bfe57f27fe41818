"""A plugin that imports fine but fails while registering."""

from facefit import hookimpl


@hookimpl
def register_samplers(register):
    raise RuntimeError("weights for the sampler are corrupt")
