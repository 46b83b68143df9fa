"""`vxswarm stack`: compose v3 files deployed as services and networks, as `docker stack`.

A stack is not an object of the manager: it is a naming and labelling convention
on ordinary networks and services (`<stack>_<name>`, label
`com.docker.stack.namespace=<stack>`), so the manager needs nothing new, and
`service ls` / `network ls` show stack objects like any others.

The path of a `stack deploy`, one module per stage, nothing written before the end:
  loader.py   files → one raw mapping (YAML 1.2 scalars, ${VAR} interpolation, merge)
  compose.py  raw mapping → typed ComposeFile, unsupported keys collected, errors
              as `services.web.deploy.replicas: expected an integer, got 'two'`
  convert.py  ComposeFile → StackSpec: NetworkSpec / ServiceSpec dicts (pure)
  deploy.py   StackSpec + the cluster's objects → Plan (create / update / keep /
              remove), refusing conflicts up front (pure)
  apply.py    Plan → API calls, undoing creations if one fails; `stack rm`
  names.py    the naming and label rules, and finding a stack's objects
"""
