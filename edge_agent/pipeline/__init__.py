"""The pure stages, in data-flow order: ``decoders`` (bytes → frames), ``identity`` (who it is on
the wire), ``kernels`` and ``proximity`` (smoothing and distance, once per tick), ``zones`` and
``sensors`` (context events), and ``tick`` (``Pipeline``, the tick of them all, and ``Ticker``,
the one loop that cuts a stream of adverts into ticks).

Nothing here does I/O or imports a module that does (``tests/unit/test_layout.py`` proves it).
"""
