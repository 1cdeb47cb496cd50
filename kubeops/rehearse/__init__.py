"""Rehearsals: run a playbook for real on a private copy of a cluster and report what the real run would do.

Beside `kubeops.fleet`, under the tasks and the console, over the engine. Its parts:

- `kubeops.rehearse.snapshot`: take a snapshot (read-only client calls in `kubeops.clients.snapshot`) and write it;
  read what SREs already have (a ``kubectl cluster-info dump --output-directory`` folder, ``kubectl get -o json``
  List files) into the same document.
- `kubeops.rehearse.private`: the private sandbox (and moto) started from a snapshot in a temporary folder, and
  always torn down.
- `kubeops.rehearse.observe` and `kubeops.rehearse.report`: what happened (run record, the private sandbox's
  request log, cluster and Auto Scaling state before and after) turned into a `Report`.
- `kubeops.rehearse.rehearsal`: the front door, `rehearse(...)`.

Nothing here talks to the real cluster except `snapshot.take`, which only reads.
"""
