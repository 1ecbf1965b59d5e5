"""Kubernetes manifests as plain Python data, built from the typed config.

Kept free of CDK constructs so the objects can be read and tested on their own;
the stacks hand them to ``eks.KubernetesManifest``.
"""
