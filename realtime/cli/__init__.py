"""The thin command lines (``nst-video``, ``nst-cam``, ``realtime.still``, ``nst-flicker``).

They parse arguments, resolve ``--device`` once, call the library, and map its errors to flag
names and one line on stderr (:mod:`realtime.cli.common`).
"""
