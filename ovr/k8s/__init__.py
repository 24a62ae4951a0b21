"""Kubernetes objects ovr creates itself (through the official ``kubernetes`` client).

Only this package talks to a Kubernetes API server; the rest of ovr stays cluster-free.
``spec``: what a multi-node stage asks for; ``kinds``: the job APIs (Trainer v2 TrainJob, Training
Operator v1 PyTorchJob) and API discovery; ``jobs``: create, follow and clean up a job;
``status``: its events and the failed pods' messages.
"""
