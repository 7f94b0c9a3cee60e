"""The warm server: ``flowenv lock`` answered by a fork of an already-imported process.

A cold ``flowenv lock`` spends most of a one-step re-lock starting Python and
importing its modules (attrs, argparse, tomllib...), far more than uv takes.
Like Gradle's daemon or sccache's server, the first in-process ``lock`` starts
a server in the background (:mod:`flowenv.warm.server`) that imports and
warms the whole lock path once; later ``flowenv lock`` runs connect to it
(:mod:`flowenv.warm.client`), hand over their argv, cwd, umask, environment
and terminal (fds 0, 1, 2), and the server forks a child that runs the
command exactly as the console script would (:mod:`flowenv.warm.child`).
While idle, the server keeps a spare child forked and warmed ahead of the
next request (:mod:`flowenv.warm.spare`).

Decisions:

- Only ``flowenv lock`` goes through it, and only when ``flowenv`` is the
  program (``main()`` with no argv); everything else runs in-process.
- Off with ``FLOWENV_SERVER=0``, when ``CI`` is set, where fork, AF_UNIX or
  SCM_RIGHTS are missing (Windows), and when the socket's directory is not
  safe (:mod:`flowenv.warm.location`): then everything runs in-process.
- Any doubt before the child commits (no server, a server that refuses, a
  stale one, a configuration with git packages that might ask for
  credentials on a terminal the child does not have) means the client runs
  the command in-process, so the server can only ever make it faster.
- Once the child has committed (sent its pid), a lost connection is an error,
  never a re-run: the child may have written files.
- Only a process like the server is served: the client checks the server's
  uid, the server its peer's uid, gid and (Linux) namespaces, groups,
  capabilities and sandbox; and what a fork keeps of the server rather than
  of its client (groups, niceness, CPUs, namespaces, loader variables) is in
  the socket's name, while the client's resource limits are taken by the child.
"""
