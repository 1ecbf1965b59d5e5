"""The jobq CDK app: stacks split by lifecycle, one typed config per environment."""
