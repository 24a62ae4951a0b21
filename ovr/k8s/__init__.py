"""Kubernetes objects ovr creates itself (through the official ``kubernetes`` client).

Only this package talks to a Kubernetes API server; the rest of ovr stays cluster-free.
``pytorchjob``: multi-node stage launch as a Kubeflow training-operator ``PyTorchJob``.
"""
