"""Actions: the verbs a playbook step can name (`k8s.cordon`, `aws.set_desired`...), declared in a registry.

Actions talk to the world only through `kubeops.clients`, and never import the engine.
"""
