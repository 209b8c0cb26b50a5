"""Pure numpy pre- and post-processing, one module per task; each inverse beside its forward."""
