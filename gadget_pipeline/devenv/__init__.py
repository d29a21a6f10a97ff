"""The local development environment: `gadget-pipeline dev` and `demo`."""
