"""Stacks split by lifecycle: network and data are long-lived, platform and application change often."""
