"""Kubernetes objects ovr creates itself (through the official ``kubernetes`` client).

Only this package talks to a Kubernetes API server; the rest of ovr stays cluster-free.
``spec``: what a multi-node stage asks for; ``kinds``: the job APIs (Trainer v2 TrainJob, Training
Operator v1 PyTorchJob) and API discovery; ``jobs``: create (strictly), follow and clean up a job;
``pods``: why its pods do not start; ``status``: its events and the failed pods' messages;
``access``: what the run's account may do and what the cluster serves (Validate config's questions).
"""
