"""The kubeops console: a web GUI over the engine API to see, plan, launch, watch and resume runs.

A presenter beside the invoke tasks, as thin as they are: routes and templates only. Everything it shows or
does goes through `kubeops.engine` (api, launcher, run_index, overview, audit), never through a subprocess and
never straight to the clients. `invoke console` (kubeops/tasks/console.py) starts it; see docs/console.md.
"""
