"""The `dg` project's defs folder: one Component per subfolder (`replicator/defs.yaml`)."""
