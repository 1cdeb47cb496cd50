"""Thin clients: the only modules that import kubernetes, boto3, fabric or HTTP libraries (lazily).

They turn library exceptions into `kubeops.errors` types and apply dry-run at their single mutation path.
"""
