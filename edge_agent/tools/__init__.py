"""The field engineer's and developer's tools over the library: ``scan`` (and its pure
``scanview``), ``record`` and ``replay``, ``calibrate``, ``evaluation`` and ``estimates``, the
``demo``, and ``mosquitto`` (a private broker for the demo and the tests)."""
