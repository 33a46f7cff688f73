"""The training wing: the LightningModule (module.py), the LightningCLI subclass (lightning_cli.py), losses, batch
transforms, learning-rate schedules, the opt-in fast path, checkpoint checks, safe file writes, run folders, console.

It imports core.data and core.models; neither imports it.
"""
