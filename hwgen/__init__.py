"""Hardware generators: turn a validated :class:`golden.model.IntModel` into what the RTL needs
(memory images and generated parameters/wrappers)."""
